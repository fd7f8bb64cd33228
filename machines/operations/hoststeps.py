"""What the steps of a host's create and removal do, for the actions declared in
operations/actions.py (start, stop, restart and kill are all in operations/lifecycle.py)."""

from __future__ import annotations

import shutil

from machines import live, provision
from machines.lib.errors import DriverError
from machines.lib.ssh import SSHError
from machines.models import Machine, Operation
from machines.operations.lifecycle import driver, refresh_ip
from machines.operations.steps import Context
from machines.pki import certs

Kind = Operation.Kind
S = Machine.State


def create_refusal(machine: Machine) -> str:
    """A create applies to a new machine, or again after a create that did not succeed."""
    last = machine.operations.filter(kind=Kind.CREATE).exclude(status__in=Operation.ACTIVE)
    last = last.order_by("-created_at", "-id").first()
    if last is None:
        if machine.state == S.NONE and not machine.operations.exists():
            return ""
        return f"{machine.name} was not created by dockerdash (imported or attached)"
    if last.status == Operation.Status.SUCCEEDED:
        return f"{machine.name} was created already: provision it again instead"
    return ""


def create_host(machine: Machine, ctx: Context) -> None:
    machine.get_driver().create(machine, log=ctx.log)
    machine.save()


def provisioned(machine: Machine, op: Operation) -> bool:
    return machine.driver_class.provisioned


def log_reason(machine: Machine, ctx: Context) -> None:
    refresh_ip(machine, ctx)
    if reason := ctx.op.args.get("reason"):
        ctx.log(f"Why: {reason}")


def purge(machine: Machine, ctx: Context) -> None:
    if not machine.driver_class.can_purge:
        ctx.log(f"The {machine.driver.kind} driver removes the host itself; nothing to undo")
        return
    try:
        provision.purge(machine, ctx)
    except (DriverError, SSHError) as e:
        if not ctx.op.args.get("force"):
            raise
        ctx.log(f"Could not undo it ({e}); removing the machine anyway (-f)")


def remove_host(machine: Machine, ctx: Context) -> None:
    try:
        driver(machine, ctx).remove(machine)
    except DriverError:
        if not ctx.op.args.get("force"):
            raise
        ctx.log("The driver could not remove the host; forgetting the machine anyway (-f)")


def forget(machine: Machine, ctx: Context) -> None:
    machine_id = machine.pk
    machine.delete()
    shutil.rmtree(certs.bundle_dir(ctx.op.machine_name), ignore_errors=True)
    certs.prune_retired_cas()
    ctx.op.machine = None  # the operation and its log outlive the machine
    live.machine_removed(machine_id, ctx.op.machine_name)
