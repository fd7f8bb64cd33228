"""The orchestration of every action, written once; used by the web, the CLI and the runner.

`request()` records what was asked (a pending Operation); the runner (or the CLI when no
runner is alive) claims it and calls `execute()`, which runs the action step by step,
logging each step durably and publishing it live.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import live
from .drivers import DriverError
from .models import Machine, Operation, OperationLogLine
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
    live.machine_changed(machine, created=kind == Operation.Kind.CREATE)
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


class Context:
    """What an action uses to report: numbered steps and log lines, stored then published."""

    def __init__(self, op: Operation, steps_total: int) -> None:
        self.op = op
        self.op.steps_total = steps_total
        self._seq = op.log_lines.count()

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

    def log(self, text: str) -> None:
        self._seq += 1
        line = OperationLogLine.objects.create(
            operation=self.op, seq=self._seq, step=self.op.step_name, text=text
        )
        live.log_lines_added(self.op, [line])


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


def do_create(machine: Machine, ctx: Context) -> None:
    driver = machine.get_driver()
    ctx.step(f"Create the host with the {machine.driver.kind} driver")
    driver.create(machine, log=ctx.log)
    machine.save()
    ctx.step("Check the host")
    _observe(machine, ctx)


def _lifecycle(method: str, label: str) -> Callable[[Machine, Context], None]:
    def action(machine: Machine, ctx: Context) -> None:
        ctx.step(f"{label} {machine.name}")
        getattr(machine.get_driver(), method)(machine)
        ctx.step("Check the host")
        _observe(machine, ctx)

    return action


def do_remove(machine: Machine, ctx: Context) -> None:
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
    ctx.op.machine = None  # the operation and its log outlive the machine
    live.machine_removed(machine_id, ctx.op.machine_name)


def _not_yet(kind: str) -> Callable[[Machine, Context], None]:
    def action(machine: Machine, ctx: Context) -> None:
        raise DriverError(f"{kind} is not available yet in this version of dockerdash")

    return action


ACTIONS: dict[str, tuple[int, Callable[[Machine, Context], None]]] = {
    Operation.Kind.CREATE: (2, do_create),
    Operation.Kind.START: (2, _lifecycle("start", "Start")),
    Operation.Kind.STOP: (2, _lifecycle("stop", "Stop")),
    Operation.Kind.RESTART: (2, _lifecycle("restart", "Restart")),
    Operation.Kind.KILL: (2, _lifecycle("kill", "Kill")),
    Operation.Kind.REMOVE: (2, do_remove),
    Operation.Kind.PROVISION: (1, _not_yet("provision")),
    Operation.Kind.REGENERATE_CERTS: (1, _not_yet("regenerate-certs")),
    Operation.Kind.UPGRADE: (1, _not_yet("upgrade")),
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
