"""The one place the REST API reaches the rest of dockerdash: machines.services, the same
functions the pages and the `machine` command line call (never their views), where the
user's rights are checked. The token's own ceiling is checked before (api/auth.py)."""

from __future__ import annotations

from machines.drivers import all_drivers
from machines.engine import containers
from machines.models import Machine, Operation
from machines.services import certificates
from machines.services import machines as services
from machines.services.drivers import driver_for, options_with_defaults
from machines.services.inspect import inspect_machine

InvalidInput = services.InvalidInput
OperationConflict = services.OperationConflict
ContainerActionError = containers.ContainerActionError
CONTAINER_ACTIONS = containers.CONTAINER_ACTIONS
VIA = "api"
issue_download = certificates.issue_download
inspect = inspect_machine


def create_machine(user, data: dict) -> Operation:
    """A machine from JSON: a driver (kind or configured name, with a provider account's
    settings), its options as the driver's form defines them, engine options and tags."""
    kind = data["driver"] or next((k for k, cls in all_drivers() if cls.cli_default), "")
    driver, made = driver_for(user, kind, data.get("settings") or {})
    engine = {k: v for k, v in data.items() if k.startswith("engine_") or k == "tls_san"}
    return services.create_from_input(
        user,
        data["name"],
        driver,
        made=made,
        options=options_with_defaults(driver.kind, data.get("options") or {}),
        engine=engine,
        tags=data.get("tags") or {},
        via=VIA,
    )


def request_action(user, machine: Machine, kind: str, args: dict | None = None) -> Operation:
    return services.request_action(user, machine, kind, via=VIA, args=args)


def cancel(user, op: Operation) -> bool:
    return services.cancel_operation(user, op)


def set_tags(user, machine: Machine, tags: dict[str, str]) -> Machine:
    return services.edit_tags(user, machine, replace=dict(tags))


def container_action(user, machine: Machine, container_id: str, action: str) -> str:
    return containers.container_action(machine, container_id, action, user)


def create_flags() -> list[dict]:
    """Every driver's `machine create` flags, for the remote client to offer the same."""
    rows = []
    for kind, driver in all_drivers():
        for flag in driver.cli_flags():
            field = getattr(driver, f"{flag.form}_form").base_fields[flag.field]
            rows.append(
                {
                    "kind": kind,
                    "flag": flag.flag,
                    "field": flag.field,
                    "form": flag.form,
                    "is_file": flag.is_file,
                    "boolean": type(field).__name__ == "BooleanField",
                    "help": flag.help,
                    "env": flag.env,
                }
            )
    return rows
