"""What the steps of the host's lifecycle do (create, observe, remove...), for the actions
declared in operations.py."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from machines import live, provision
from machines.lib.errors import DriverError
from machines.lib.ssh import SSHError
from machines.models import Machine, Operation
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


def observe(machine: Machine, ctx: Context) -> None:
    machine.observe()
    ctx.log(f"{machine.name} is {machine.state}" + (f" at {machine.ip}" if machine.ip else ""))


def refresh_ip(machine: Machine, ctx: Context) -> None:
    """The driver's current IP (a container or cloud host may get a new one on each start)."""
    try:
        ip = machine.get_driver().ip(machine)
    except DriverError:
        return
    if ip and ip != machine.ip:
        ctx.log(f"The IP of {machine.name} changed from {machine.ip or '(none)'} to {ip}")
        machine.ip = ip
        machine.save(update_fields=["ip"])


def driver(machine: Machine, ctx: Context):
    """The machine's driver, reporting its progress to the operation's log."""
    found = machine.get_driver()
    found.log = ctx.log
    return found


def create_host(machine: Machine, ctx: Context) -> None:
    machine.get_driver().create(machine, log=ctx.log)
    machine.save()


def call_driver(method: str) -> Callable[[Machine, Context], None]:
    def run(machine: Machine, ctx: Context) -> None:
        getattr(driver(machine, ctx), method)(machine)

    return run


def provisioned(machine: Machine, op: Operation) -> bool:
    return machine.driver_class.provisioned


def has_certificate(machine: Machine, op: Operation) -> bool:
    return bool(machine.tls_server_cert)


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
