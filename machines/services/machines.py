"""What a user asks of machines: create one, run an action, cancel it, edit tags. The web
views, the sockets, the command line (and the REST API to come) call these, never the
operations below them directly, so the rights are checked in one place."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from machines import live
from machines.audit import log as audit
from machines.lib.errors import DriverError
from machines.models import Driver, Machine, Operation
from machines.operations import actions as operations
from machines.operations.actions import NotApplicable, OperationConflict
from machines.services import rights
from machines.services.drivers import clean_options
from machines.services.errors import InvalidInput
from machines.validation import one_line

__all__ = ["InvalidInput", "NotApplicable", "OperationConflict"]


def create_machine(
    user, machine: Machine, options: dict, *, via: str = "web", swarm: dict | None = None
) -> Operation:
    """Save a new machine (checked by the model) with its driver's cleaned options, and
    request its create operation (joining a cluster at its end: swarm = {"swarm": NAME,
    "swarm_role": manager|worker})."""
    rights.require(user, rights.ADD, "create machines")
    if swarm and swarm.get("swarm"):
        rights.require(user, rights.OPERATE, "add machines to clusters")
    try:
        return operations.create_machine(machine, options, user=user, via=via, args=swarm)
    except DriverError as e:
        raise InvalidInput(str(e)) from None


def create_from_input(
    user,
    name: str,
    driver: Driver,
    *,
    made: bool = False,
    options: dict,
    engine: dict,
    tags: dict,
    via: str,
    swarm: dict | None = None,
) -> Operation:
    """A machine from plain input (the CLI's flags, an API's JSON) on a driver found or made
    by `drivers.driver_for`: its options checked by the driver's own form, the engine
    options and tags by the model. An account just `made` for a create that cannot happen
    is not kept."""
    rights.require(user, rights.ADD, "create machines")
    try:
        with transaction.atomic():
            cleaned = clean_options(driver, options)
            machine = Machine(name=name, driver=driver, tags=tags, **engine)
            try:
                return create_machine(user, machine, cleaned, via=via, swarm=swarm)
            except ValidationError as e:
                raise InvalidInput(f"Invalid machine: {one_line(e)}") from None
    except InvalidInput:
        if made:
            Driver.objects.filter(pk=driver.pk).delete()
        raise


def request_action(
    user, machine: Machine, kind: str, *, via: str = "web", args: dict | None = None
) -> Operation:
    """Record one pending operation on a machine; OperationConflict (or NotApplicable)
    says why not in one sentence."""
    if kind not in operations.ACTIONS:
        raise InvalidInput(f"Unknown action {kind!r}.")
    rights.require_on(user, machine, rights.permission_for(kind), f"{kind} machines")
    return operations.request(machine, kind, user=user, via=via, args=args)


def cancel_operation(user, op: Operation) -> bool:
    if op.machine is not None:
        rights.require_on(user, op.machine, rights.OPERATE, "cancel operations")
    else:
        rights.require(user, rights.OPERATE, "cancel operations")
    return operations.cancel(op)


def edit_tags(
    user, machine: Machine, *, replace: dict | None = None, add=None, remove=()
) -> Machine:
    """Replace a machine's tags, or add and remove some; checked by the model (as create and
    the import check them), then shown on every page that lists the machine."""
    rights.require_on(user, machine, rights.OPERATE, "edit tags")
    unknown = [key for key in remove if key not in machine.tags]
    if unknown:
        raise InvalidInput(f"{machine.name} has no tag {', '.join(unknown)}")
    if replace is None:
        replace = {k: v for k, v in machine.tags.items() if k not in remove} | dict(add or {})
    # As stored: a ModelForm's is_valid() has already put the new tags on `machine`.
    before = Machine.objects.filter(pk=machine.pk).values_list("tags", flat=True).first() or {}
    machine.tags = replace
    try:
        machine.full_clean(exclude=[f.name for f in machine._meta.fields if f.name != "tags"])
    except ValidationError as e:
        machine.refresh_from_db(fields=["tags"])
        raise InvalidInput(f"Invalid tags: {one_line(e)}") from None
    machine.save(update_fields=["tags"])
    audit.record_tags(machine, before, machine.tags)
    live.machine_changed(machine)
    return machine
