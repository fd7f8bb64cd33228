"""The orchestration of every action, declared once; used by the web, the CLI and the runner.

`request()` records what was asked (a pending Operation); the runner (or the CLI when no
runner is alive) claims it and calls `execute()`, which runs the action's declared steps in
order, logging each step durably and publishing it live. An action is a list of steps: the
number of steps shown to the user is the length of that list for the machine at hand.
"""

from __future__ import annotations

import logging
import traceback

from django.db import IntegrityError, transaction
from django.utils import timezone

from machines import live, provision, webhooks
from machines.audit import log as audit
from machines.lib.errors import DriverError, NotSupported
from machines.lib.errorwords import detail
from machines.lib.ssh import SSHError, generate_key
from machines.models import Machine, Operation, OperationLogLine
from machines.operations.hoststeps import (
    create_host,
    create_refusal,
    forget,
    log_reason,
    provisioned,
    purge,
    remove_host,
)
from machines.operations.lifecycle import CHECK_HOST, LIFECYCLE, refresh_ip
from machines.operations.steps import Action, Cancelled, Context, Step, asked
from machines.operations.swarmsteps import (
    JOIN_AFTER_CREATE,
    LEAVE_CLUSTER,
    SWARM_ACTIONS,
    swarm_join_rows,
)
from machines.validation import strip_url_credentials

log = logging.getLogger(__name__)

Kind = Operation.Kind


class OperationConflict(Exception):
    """Another operation is already pending or running on this machine."""


class NotApplicable(OperationConflict):
    """The action does not apply to the machine: its driver cannot, or its state says no."""


S = Machine.State
# The states each action applies in (a state nobody confirmed lately is unknown: any).
REACHABLE = (S.RUNNING, S.ERROR)


CONNECT = Step(lambda m: f"Connect to {provision.ssh_target(m)} over SSH", provision.connect)
DETECT = Step("Detect the operating system", provision.detect)
# The same, refusing a daemon that dockerdash has not configured yet.
DETECT_CONFIGURED = Step("Detect the operating system", provision.detect_configured)
WAIT_FOR_API = Step("Wait for the Docker API", provision.wait_for_api)
PROVISION = [
    CONNECT,
    DETECT,
    Step("Install Docker", provision.install),
    Step("Issue the TLS certificates", provision.issue),
    Step("Configure the Docker daemon", provision.configure),
    Step("Restart Docker", provision.restart_if_changed),
    WAIT_FOR_API,
]


_ACTIONS = [
    Action(
        Kind.CREATE,
        "Create",
        [
            Step(lambda m: f"Create the host with the {m.driver.kind} driver", create_host),
            CHECK_HOST,
            *(Step(s.name, s.run, provisioned) for s in PROVISION),
            JOIN_AFTER_CREATE,
        ],
        transient=Machine.State.STARTING,
        button=False,
        also=create_refusal,
    ),
    *LIFECYCLE,
    Action(
        Kind.PROVISION,
        "Provision",
        PROVISION,
        needs="provisioned",
        prepare=refresh_ip,
        in_menu=True,
        states=REACHABLE,
    ),
    Action(
        Kind.REGENERATE_CERTS,
        "Regenerate certs",
        [
            CONNECT,
            DETECT_CONFIGURED,
            Step("Issue new TLS certificates", provision.issue_new),
            Step("Install the certificates and restart Docker", provision.install_certs),
            WAIT_FOR_API,
        ],
        needs="provisioned",
        states=REACHABLE,
        prepare=log_reason,
        finish=provision.report_retired_cas,
        confirm="Regenerate the TLS certificates of {name}? Docker restarts on it.",
        in_menu=True,
    ),
    Action(
        Kind.ROTATE_CLIENT_CA,
        "Rotate client CA",
        [
            CONNECT,
            DETECT_CONFIGURED,
            Step("Install the trusted client CAs", provision.install_trust),
            Step("Restart Docker", provision.restart_keeping_containers),
            WAIT_FOR_API,
        ],
        needs="provisioned",
        states=REACHABLE,
        finish=provision.report_kept,
        button=False,
    ),
    Action(
        Kind.UPGRADE,
        "Upgrade",
        [
            CONNECT,
            DETECT,
            Step("Upgrade Docker", provision.upgrade_docker),
            WAIT_FOR_API,
        ],
        needs="provisioned",
        states=REACHABLE,
        finish=provision.report_upgrade,
        confirm="Upgrade Docker on {name}?",
        in_menu=True,
    ),
    Action(
        Kind.REMOVE,
        "Remove",
        [
            LEAVE_CLUSTER,
            Step("Undo the Docker daemon configuration on the host", purge, asked("purge")),
            Step(lambda m: f"Remove the host of {m.name}", remove_host),
            Step("Forget the machine", forget),
        ],
        button=False,
    ),
    *SWARM_ACTIONS,
]
ACTIONS: dict[str, Action] = {action.kind: action for action in _ACTIONS}
# What an operator's buttons (and the CLI's plain lifecycle commands) may request.
BUTTONS: dict[str, Action] = {a.kind: a for a in _ACTIONS if a.button}


def request(
    machine: Machine,
    kind: str,
    *,
    user=None,
    via: str = "web",
    args: dict | None = None,
    bulk=None,
) -> Operation:
    """Record a pending operation; refuse if one is already pending or running, or if the
    action does not apply to the machine (its driver cannot, or its state says no)."""
    # The state as stored now: the caller's copy may be older than the last operation.
    if current := Machine.objects.filter(pk=machine.pk).values("state", "last_checked").first():
        machine.state, machine.last_checked = current["state"], current["last_checked"]
    if why := ACTIONS[kind].refusal(machine):
        raise NotApplicable(f"{why}.")
    try:
        with transaction.atomic():
            op = Operation.objects.create(
                machine=machine,
                machine_name=machine.name,
                kind=kind,
                args=args or {},
                requested_by=user if getattr(user, "is_authenticated", False) else None,
                requested_via=via,
                bulk=bulk,
            )
    except IntegrityError:
        active = machine.active_operation
        what = f"{active.kind} ({active.status})" if active else "another operation"
        raise OperationConflict(
            f"{machine.name} is busy: {what} has not finished yet. Wait for it or cancel it."
        ) from None
    audit.record_operation(op, user=user, via=via)
    live.operation_changed(op)
    live.machine_changed(machine)
    return op


def cancel(op: Operation) -> bool:
    """Cancel a pending operation now, or ask a running one to stop at its next step."""
    if Operation.objects.filter(pk=op.pk, status=Operation.Status.PENDING).update(
        status=Operation.Status.CANCELLED, finished_at=timezone.now(), error="Cancelled"
    ):
        op.refresh_from_db()
        live.operation_changed(op)
        if op.machine:
            live.machine_changed(op.machine)
        return True
    return bool(
        Operation.objects.filter(pk=op.pk, status=Operation.Status.RUNNING).update(
            cancel_requested=True
        )
    )


def create_machine(
    machine: Machine,
    options: dict | None = None,
    *,
    user=None,
    via: str = "web",
    args: dict | None = None,
) -> Operation | None:
    """Save a new machine with its driver's options, checked by the model (so the form, the
    CLI and the import share every rule), and request its create operation. A machine
    brought in by the import (no options) exists already: it is only checked and saved."""
    if options is not None:
        machine.get_driver().apply_options(machine, options)
        if not machine.ssh_private_key:
            machine.ssh_private_key, _ = generate_key()
    if getattr(user, "is_authenticated", False):
        machine.created_by = user
    machine.full_clean()
    with transaction.atomic():
        machine.save()
        if options is None:
            return None
        if args and args.get("swarm"):
            # Before provisioning: a machine in a cluster is configured for swarm mode.
            swarm_join_rows(machine, args["swarm"], args.get("swarm_role", ""))
        return request(machine, Kind.CREATE, user=user, via=via, args=args)


def request_client_ca_rotation(*, user=None, via: str = "web") -> tuple[list[Operation], list[str]]:
    """A rotate-client-ca operation for every machine that does not run with the current
    users' client CA yet (after "revoke all", or to retry where one failed). Returns the
    operations and the names of the machines that were busy (to retry once they are not)."""
    from machines.pki import usercerts

    requested, busy = [], []
    for machine in usercerts.rotation_candidates():
        if not machine.driver_class.provisioned:
            continue
        try:
            requested.append(request(machine, Kind.ROTATE_CLIENT_CA, user=user, via=via))
        except OperationConflict:
            busy.append(machine.name)
    return requested, busy


def request_ip_heal(machine: Machine) -> Operation | None:
    """Request a regenerate-certs operation if the machine's IP changed under its certificate.

    For the runner's health check: one driver call, no SSH. The operation (run by the runner
    like any other) takes the new IP, re-issues the server certificate and restarts Docker,
    leaving running containers running. None when nothing changed or the machine is busy.
    """
    new_ip = provision.ip_change(machine)
    if new_ip is None:
        return None
    try:
        return request(
            machine,
            Kind.REGENERATE_CERTS,
            via="system",
            args={"reason": f"the IP changed from {machine.ip} to {new_ip}"},
        )
    except OperationConflict:
        return None


def _check_applies(action: Action, machine: Machine) -> None:
    # Checked when requested too; a driver's row may have changed since.
    if not action.applies_to(machine):
        raise NotSupported(action.refusal(machine))


def _run(action: Action, machine: Machine, ctx: Context) -> None:
    if action.transient:
        Machine.objects.filter(pk=machine.pk).update(state=action.transient)
        machine.state = action.transient
        live.machine_changed(machine)
    if action.prepare:
        action.prepare(machine, ctx)
    plan = action.plan(machine, ctx.op)
    ctx.op.steps_total = len(plan)
    for n, step in enumerate(plan):
        ctx.step(step.title(machine))  # a cancel asked for ends the operation here
        if n == 0:
            _check_applies(action, machine)
        step.run(machine, ctx)
    if action.finish:
        action.finish(machine, ctx)


def execute(op: Operation) -> Operation:
    """Run a claimed (running) operation to its end and record the outcome."""
    machine = op.machine
    state_before = machine.state if machine is not None else None
    ctx = Context(op)
    try:
        if machine is None:
            raise DriverError(f"Machine {op.machine_name} no longer exists")
        _run(ACTIONS[op.kind], machine, ctx)
    except Exception as e:
        expected = isinstance(e, DriverError | SSHError | Cancelled)
        message = str(e) or e.__class__.__name__
        if not expected:
            log.error("Operation %s failed:\n%s", op.pk, traceback.format_exc())
            message = f"Unexpected error: {e.__class__.__name__}: {e}"
        message = strip_url_credentials(message)  # viewers read it on the machine's page
        ctx.log(f"Failed: {message}", kind=OperationLogLine.Kind.OUTCOME)
        op.status = (
            Operation.Status.CANCELLED if isinstance(e, Cancelled) else Operation.Status.FAILED
        )
        op.error = message
        if machine is not None and Machine.objects.filter(pk=machine.pk).exists():
            machine.record_failure(message, detail(e))
    else:
        ctx.log("Done", kind=OperationLogLine.Kind.OUTCOME)
        op.status = Operation.Status.SUCCEEDED
    finally:
        ctx.close()
    op.finished_at = timezone.now()
    op.save(update_fields=["status", "error", "finished_at", "step", "steps_total", "step_name"])
    live.operation_changed(op)
    after = Machine.objects.filter(pk=op.machine_id).first() if op.machine_id else None
    if after is not None:
        live.machine_changed(after)
    _emit_webhooks(op, state_before, after)
    return op


def _emit_webhooks(op: Operation, state_before: str | None, after: Machine | None) -> None:
    succeeded = op.status == Operation.Status.SUCCEEDED
    webhooks.emit(
        "operation.finished" if succeeded else "operation.failed",
        {
            "operation": op.pk,
            "kind": op.kind,
            "machine": op.machine_name,
            "status": op.status,
            "error": op.error,
            "finished_at": op.finished_at.isoformat(),
        },
    )
    state_after = after.state if after is not None else None
    if state_before != state_after:
        webhooks.emit(
            "machine.state_changed",
            {"machine": op.machine_name, "from": state_before, "to": state_after},
        )
