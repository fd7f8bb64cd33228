"""The orchestration of every action, written once; used by the web, the CLI and the runner.

`request()` records what was asked (a pending Operation); the runner (or the CLI when no
runner is alive) claims it and calls `execute()`, which runs the action step by step,
logging each step durably and publishing it live.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from . import live, provision
from .drivers import DriverError, NotSupported
from .models import Machine, Operation, OperationLogLine
from .provision import certs
from .provision.ssh import SSHError

log = logging.getLogger(__name__)


class OperationConflict(Exception):
    """Another operation is already pending or running on this machine."""


class Cancelled(Exception):
    pass


# Which state a machine passes through while an action runs.
TRANSIENT_STATE = {
    Operation.Kind.CREATE: Machine.State.STARTING,
    Operation.Kind.START: Machine.State.STARTING,
    Operation.Kind.RESTART: Machine.State.STARTING,
    Operation.Kind.STOP: Machine.State.STOPPING,
    Operation.Kind.KILL: Machine.State.STOPPING,
}


def request(
    machine: Machine,
    kind: str,
    *,
    user=None,
    via: str = "web",
    args: dict | None = None,
) -> Operation:
    """Record a pending operation; refuse if one is already pending or running."""
    try:
        with transaction.atomic():
            op = Operation.objects.create(
                machine=machine,
                machine_name=machine.name,
                kind=kind,
                args=args or {},
                requested_by=user if getattr(user, "is_authenticated", False) else None,
                requested_via=via,
            )
    except IntegrityError:
        active = machine.active_operation
        what = f"{active.kind} ({active.status})" if active else "another operation"
        raise OperationConflict(
            f"{machine.name} is busy: {what} has not finished yet. Wait for it or cancel it."
        ) from None
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


# An operation's log holds what remote commands print: bounded per line and per step.
LINE_BYTES = 4096
OUTPUT_LINES = 5000


class Context:
    """What an action uses to report: numbered steps and log lines, stored then published."""

    def __init__(self, op: Operation, steps_total: int) -> None:
        self.op = op
        self.op.steps_total = steps_total
        self._seq = op.log_lines.count()
        self._output_step, self._output_lines = -1, 0

    def step(self, name: str) -> None:
        if Operation.objects.filter(pk=self.op.pk, cancel_requested=True).exists():
            raise Cancelled(f"Cancelled before step {self.op.step + 1}: {name}")
        self.op.step += 1
        self.op.step_name = name
        self.op.heartbeat_at = timezone.now()
        Operation.objects.filter(pk=self.op.pk).update(
            step=self.op.step,
            steps_total=self.op.steps_total,
            step_name=name,
            heartbeat_at=self.op.heartbeat_at,
        )
        self.log(f"[{self.op.step}/{self.op.steps_total}] {name}")
        live.operation_changed(self.op)

    def set_total(self, steps_total: int) -> None:
        """For actions whose number of steps depends on the machine (before the first step)."""
        self.op.steps_total = steps_total

    def log(self, text: str) -> None:
        self._append([text])

    def log_many(self, texts: list[str]) -> None:
        """Several lines stored at once and published as one message (command output).

        A remote command prints what it likes: each step stores at most OUTPUT_LINES lines
        of it, then one line saying the rest was left out.
        """
        if self._output_step != self.op.step:
            self._output_step, self._output_lines = self.op.step, 0
        room = OUTPUT_LINES - self._output_lines
        self._output_lines += len(texts)
        if len(texts) > room:
            cut = [f"… output cut after {OUTPUT_LINES} lines in this step: the rest is not kept"]
            texts = texts[: max(room, 0)] + (cut if room >= 0 else [])
        self._append(texts)

    def _append(self, texts: list[str]) -> None:
        """The one place lines enter an operation's log: stored, then published."""
        if not texts:
            return
        lines = []
        for text in texts:
            self._seq += 1
            lines.append(
                OperationLogLine(
                    operation=self.op, seq=self._seq, step=self.op.step_name, text=_capped(text)
                )
            )
        OperationLogLine.objects.bulk_create(lines)
        live.log_lines_added(self.op, lines)


def _capped(text: str) -> str:
    """A log line of at most LINE_BYTES bytes (UTF-8), and a mark where it was cut."""
    raw = text.encode()
    if len(raw) <= LINE_BYTES:
        return text
    return raw[:LINE_BYTES].decode(errors="ignore") + f" … [line cut at {LINE_BYTES} bytes]"


def _observe(machine: Machine, ctx: Context) -> None:
    driver = machine.get_driver()
    machine.state = driver.state(machine)
    with contextlib.suppress(DriverError):
        machine.ip = driver.ip(machine) or machine.ip
    machine.last_checked = timezone.now()
    if machine.state == Machine.State.RUNNING:
        machine.last_seen = machine.last_checked
    machine.save()
    ctx.log(f"{machine.name} is {machine.state}" + (f" at {machine.ip}" if machine.ip else ""))


def _provisioned_over_ssh(machine: Machine) -> bool:
    """Whether the machine's driver hands over a host to provision (all but `none`)."""
    try:
        machine.get_driver().ssh_address(machine)
    except NotSupported:
        return False
    return True


def _refresh_ip(machine: Machine, ctx: Context) -> None:
    """The driver's current IP (a container or cloud host may get a new one on each start)."""
    try:
        ip = machine.get_driver().ip(machine)
    except DriverError:
        return
    if ip and ip != machine.ip:
        ctx.log(f"The IP of {machine.name} changed from {machine.ip or '(none)'} to {ip}")
        machine.ip = ip
        machine.save(update_fields=["ip"])


def do_create(machine: Machine, ctx: Context) -> None:
    driver = machine.get_driver()
    provisioned = _provisioned_over_ssh(machine)
    ctx.set_total(2 + (provision.PROVISION_STEPS if provisioned else 0))
    ctx.step(f"Create the host with the {machine.driver.kind} driver")
    driver.create(machine, log=ctx.log)
    machine.save()
    ctx.step("Check the host")
    _observe(machine, ctx)
    if provisioned:
        provision.provision(machine, ctx)


def do_provision(machine: Machine, ctx: Context) -> None:
    if not _provisioned_over_ssh(machine):
        raise NotSupported(f"{machine.driver.kind} machines are not provisioned by dockerdash")
    _refresh_ip(machine, ctx)
    provision.provision(machine, ctx)


def do_regenerate_certs(machine: Machine, ctx: Context) -> None:
    if not _provisioned_over_ssh(machine):
        raise NotSupported(f"{machine.driver.kind} machines have no dockerdash certificates")
    _refresh_ip(machine, ctx)
    if reason := ctx.op.args.get("reason"):
        ctx.log(f"Why: {reason}")
    provision.regenerate_certs(machine, ctx, new_ca=bool(ctx.op.args.get("client_certs")))


def do_rotate_client_ca(machine: Machine, ctx: Context) -> None:
    if not _provisioned_over_ssh(machine):
        raise NotSupported(f"{machine.driver.kind} machines have no dockerdash certificates")
    provision.rotate_client_ca(machine, ctx)


def request_client_ca_rotation(*, user=None, via: str = "web") -> tuple[list[Operation], list[str]]:
    """A rotate-client-ca operation for every machine that does not run with the current
    users' client CA yet (after "revoke all", or to retry where one failed). Returns the
    operations and the names of the machines that were busy (to retry once they are not)."""
    from .provision import usercerts

    requested, busy = [], []
    for machine in usercerts.rotation_candidates():
        if not _provisioned_over_ssh(machine):
            continue
        try:
            requested.append(request(machine, Operation.Kind.ROTATE_CLIENT_CA, user=user, via=via))
        except OperationConflict:
            busy.append(machine.name)
    return requested, busy


def do_upgrade(machine: Machine, ctx: Context) -> None:
    if not _provisioned_over_ssh(machine):
        raise NotSupported(f"{machine.driver.kind} machines are not upgraded by dockerdash")
    provision.upgrade(machine, ctx)


def _lifecycle(method: str, label: str) -> Callable[[Machine, Context], None]:
    # After a (re)start, a provisioned machine's engine is checked too: its IP may have changed
    # (a container or a cloud host gets a new one), which its certificate must then name.
    check_engine = method in ("start", "restart")

    def action(machine: Machine, ctx: Context) -> None:
        checks = check_engine and bool(machine.tls_server_cert)
        ctx.set_total(3 if checks else 2)
        ctx.step(f"{label} {machine.name}")
        getattr(machine.get_driver(), method)(machine)
        ctx.step("Check the host")
        _observe(machine, ctx)
        if checks:
            ctx.step("Check the Docker engine")
            provision.check_engine(machine, ctx)

    return action


def heal_ip_change(machine: Machine) -> Operation | None:
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
            Operation.Kind.REGENERATE_CERTS,
            via="system",
            args={"reason": f"the IP changed from {machine.ip} to {new_ip}"},
        )
    except OperationConflict:
        return None


def do_remove(machine: Machine, ctx: Context) -> None:
    purge = bool(ctx.op.args.get("purge"))
    ctx.set_total(3 if purge else 2)
    if purge:
        ctx.step("Undo the Docker daemon configuration on the host")
        if machine.driver.kind == "generic":
            try:
                provision.purge(machine, ctx)
            except (DriverError, SSHError) as e:
                if not ctx.op.args.get("force"):
                    raise
                ctx.log(f"Could not undo it ({e}); removing the machine anyway (-f)")
        else:
            ctx.log(f"The {machine.driver.kind} driver removes the host itself; nothing to undo")
    ctx.step(f"Remove the host of {machine.name}")
    try:
        machine.get_driver().remove(machine)
    except DriverError:
        if not ctx.op.args.get("force"):
            raise
        ctx.log("The driver could not remove the host; forgetting the machine anyway (-f)")
    ctx.step("Forget the machine")
    machine_id = machine.pk
    machine.delete()
    shutil.rmtree(certs.bundle_dir(ctx.op.machine_name), ignore_errors=True)
    certs.prune_retired_cas()
    ctx.op.machine = None  # the operation and its log outlive the machine
    live.machine_removed(machine_id, ctx.op.machine_name)


# Kind -> (number of steps, action); actions whose steps depend on the machine set their own.
ACTIONS: dict[str, tuple[int, Callable[[Machine, Context], None]]] = {
    Operation.Kind.CREATE: (2 + provision.PROVISION_STEPS, do_create),
    Operation.Kind.START: (3, _lifecycle("start", "Start")),
    Operation.Kind.STOP: (2, _lifecycle("stop", "Stop")),
    Operation.Kind.RESTART: (3, _lifecycle("restart", "Restart")),
    Operation.Kind.KILL: (2, _lifecycle("kill", "Kill")),
    Operation.Kind.REMOVE: (2, do_remove),
    Operation.Kind.PROVISION: (provision.PROVISION_STEPS, do_provision),
    Operation.Kind.REGENERATE_CERTS: (provision.REGENERATE_STEPS, do_regenerate_certs),
    Operation.Kind.UPGRADE: (provision.UPGRADE_STEPS, do_upgrade),
    Operation.Kind.ROTATE_CLIENT_CA: (provision.ROTATE_STEPS, do_rotate_client_ca),
}


def execute(op: Operation) -> Operation:
    """Run a claimed (running) operation to its end and record the outcome."""
    machine = op.machine
    steps_total, action = ACTIONS[op.kind]
    ctx = Context(op, steps_total)
    try:
        if machine is None:
            raise DriverError(f"Machine {op.machine_name} no longer exists")
        if transient := TRANSIENT_STATE.get(op.kind):
            Machine.objects.filter(pk=machine.pk).update(state=transient)
            machine.state = transient
            live.machine_changed(machine)
        action(machine, ctx)
    except Exception as e:
        expected = isinstance(e, DriverError | SSHError | Cancelled)
        message = str(e) or e.__class__.__name__
        if not expected:
            log.error("Operation %s failed:\n%s", op.pk, traceback.format_exc())
            message = f"Unexpected error: {e.__class__.__name__}: {e}"
        ctx.log(f"Failed: {message}")
        op.status = (
            Operation.Status.CANCELLED if isinstance(e, Cancelled) else Operation.Status.FAILED
        )
        op.error = message
        if machine is not None and Machine.objects.filter(pk=machine.pk).exists():
            _record_failure(machine, message)
    else:
        ctx.log("Done")
        op.status = Operation.Status.SUCCEEDED
    op.finished_at = timezone.now()
    op.save(update_fields=["status", "error", "finished_at", "step", "steps_total", "step_name"])
    live.operation_changed(op)
    if op.machine_id and Machine.objects.filter(pk=op.machine_id).exists():
        live.machine_changed(Machine.objects.get(pk=op.machine_id))
    return op


def _record_failure(machine: Machine, message: str) -> None:
    machine.refresh_from_db()
    machine.last_error = message
    machine.last_checked = timezone.now()
    try:
        machine.state = machine.get_driver().state(machine)
    except Exception as e:  # the host may be the very thing that is broken
        machine.state = Machine.State.ERROR
        machine.last_error = f"{message} (state unknown: {e})"
    machine.save()


# -- containers on a machine's engine ---------------------------------------------------------

CONTAINER_ACTIONS = {
    # action: (in progress, done)
    "start": ("Starting", "Started"),
    "stop": ("Stopping", "Stopped"),
    "restart": ("Restarting", "Restarted"),
    "kill": ("Killing", "Killed"),
    "pause": ("Pausing", "Paused"),
    "unpause": ("Unpausing", "Unpaused"),
    "remove": ("Removing", "Removed"),
}
# docker's own default: a stop (or restart) waits this long for the process, then kills it.
CONTAINER_STOP_TIMEOUT = 10
_container_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="container-action")


class ContainerActionError(Exception):
    """The action was refused or failed; the message is shown to the user as it is."""


def container_action(machine: Machine, container_id: str, action: str, user, *, wait=1.0) -> str:
    """Act on one container of a machine's engine; what happened, within `wait` seconds.

    The engine call runs in a thread: a stop may take 10 s and a request must not wait for
    it. If it has not ended within `wait`, this says it is in progress; the engine watcher
    publishes the container's new state when it comes, and a late failure is published as a
    notice to the container's viewers.
    """
    if not user.has_perm("machines.operate_machine"):
        raise ContainerActionError("Only operators and admins act on containers.")
    if action not in CONTAINER_ACTIONS:
        raise ContainerActionError(f"Unknown container action {action!r}.")
    container = machine.containers.filter(container_id=container_id).first()
    if container is None:
        raise ContainerActionError("This container is not on the machine (any more).")
    doing, done = CONTAINER_ACTIONS[action]
    log.info("%s %s on %s (by %s)", doing, container.name, machine.name, user)
    future = _container_pool.submit(_act_on_container, machine, container_id, action)
    try:
        future.result(timeout=wait)
    except FutureTimeout:

        def report_late_failure(f) -> None:
            if f.exception() is not None:
                text = f"{doing} {container.name} failed: {f.exception()}"
                live.container_notice(container, text, error=True)

        future.add_done_callback(report_late_failure)
        return f"{doing} {container.name}…"
    except ContainerActionError as e:
        raise ContainerActionError(f"{doing} {container.name} failed: {e}") from None
    return f"{done} {container.name}."


def _act_on_container(machine: Machine, container_id: str, action: str) -> None:
    import docker.errors
    import requests.exceptions

    from .engines import EngineError, client_for_machine

    slow = action in ("stop", "restart")
    try:
        client = client_for_machine(machine, timeout=CONTAINER_STOP_TIMEOUT + 10 if slow else 10)
        try:
            api = client.api
            if action == "remove":
                api.remove_container(container_id, force=True)
            elif slow:
                getattr(api, action)(container_id, timeout=CONTAINER_STOP_TIMEOUT)
            else:
                getattr(api, action)(container_id)
        finally:
            client.close()
    except docker.errors.APIError as e:
        raise ContainerActionError(e.explanation or str(e)) from None
    except EngineError as e:
        raise ContainerActionError(str(e)) from None
    except (requests.exceptions.RequestException, docker.errors.DockerException) as e:
        raise ContainerActionError(f"the engine did not answer ({e.__class__.__name__})") from None
    finally:
        close_old_connections()
