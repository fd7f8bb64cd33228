"""`machine create`: docker-machine's flags, the driver's own generated from its forms."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import CommandError

from machines.cli.common import acting_user
from machines.cli.follow import follow
from machines.drivers import all_drivers, driver_class, registered
from machines.drivers.base import CLIFlag
from machines.models import Driver, Machine, Operation, machine_name_validator
from machines.validation import one_line, parse_tags

# Engine options, as docker-machine's --engine-* flags: option -> (MachineForm field, repeated).
ENGINE_FLAGS = {
    "engine_label": ("engine_labels", True),
    "engine_insecure_registry": ("engine_insecure_registries", True),
    "engine_registry_mirror": ("engine_registry_mirrors", True),
    "engine_storage_driver": ("engine_storage_driver", False),
    "engine_env": ("engine_env", True),
    "engine_opt": ("engine_opts", True),
    "engine_install_url": ("engine_install_url", False),
    "tls_san": ("tls_san", True),
}


def _dest(flag: CLIFlag) -> str:
    return flag.flag.lstrip("-").replace("-", "_")


def _drivers_for(given: list[str] | None) -> list[tuple[str, type]]:
    """The drivers whose flags this command line may use: the one -d names, as
    docker-machine parsed a driver's flags only once chosen (and importing every driver
    loads every cloud SDK: a second and more); all of them for --help or no -d."""
    if given is None or {"-h", "--help"} & set(given):
        return all_drivers()
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("-d", "--driver")
    name = pre.parse_known_args(given)[0].driver
    kinds = registered()
    if name is not None and name not in kinds:  # a configured driver's name
        name = Driver.objects.filter(name=name).values_list("kind", flat=True).first()
    return [(name, driver_class(name))] if name in kinds else all_drivers()


def add_arguments(action: str, parser) -> None:
    parser.add_argument("name")
    drivers = _drivers_for(getattr(parser, "given", None))
    default = next((kind for kind, cls in drivers if cls.cli_default), None)
    parser.add_argument(
        "-d", "--driver", default=default, help=f"driver kind or configured name ({default})"
    )
    for kind, driver in drivers:
        group = parser.add_argument_group(f"{kind} driver")
        for flag in driver.cli_flags():
            form_field = getattr(driver, f"{flag.form}_form").base_fields[flag.field]
            if isinstance(form_field, forms.BooleanField):
                group.add_argument(flag.flag, dest=_dest(flag), action="store_true", default=None)
            else:
                help_text = f"{flag.help} (a file)" if flag.is_file else flag.help
                group.add_argument(flag.flag, dest=_dest(flag), default=None, help=help_text)
    for flag, help_text in (
        ("--engine-label", "a label for the engine, key=value (repeatable)"),
        ("--engine-insecure-registry", "an insecure registry to allow (repeatable)"),
        ("--engine-registry-mirror", "a registry mirror (repeatable)"),
        ("--engine-env", "an environment variable of the daemon, KEY=value (repeatable)"),
        ("--engine-opt", "a daemon flag, name=value as docker-machine or --name=value"),
        ("--tls-san", "an extra name or IP for the engine's certificate (repeatable)"),
        ("--tag", "a tag of the machine, key=value (repeatable)"),
    ):
        parser.add_argument(flag, action="append", default=[], help=help_text)
    parser.add_argument("--engine-storage-driver", default="", help="the storage driver")
    parser.add_argument(
        "--engine-install-url",
        default="",
        help="install Docker with this script (e.g. https://get.docker.com) instead of the "
        "distribution's package",
    )
    parser.add_argument(
        "--swarm",
        default="",
        metavar="CLUSTER",
        help="join this cluster (Swarm mode) once created, as a worker",
    )
    parser.add_argument(
        "--swarm-master",
        action="store_true",
        help="with --swarm: join as a manager (or start the cluster if it does not exist)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="stream the whole log")


def run(action: str, cli, name: str, driver: str, verbose: bool, **opts) -> None:
    from machines.services import machines as services
    from machines.services.drivers import driver_for

    try:
        machine_name_validator(name)
    except ValidationError:
        raise CommandError(
            f"Invalid machine name {name!r}: use letters, digits, '-' and '.'"
        ) from None
    existing = Machine.objects.select_related("driver").filter(name=name).first()
    if existing is not None:
        _retry(cli, existing, verbose)
        return
    kind = driver_class(driver) if driver in registered() else None
    try:
        user = acting_user()
        row, made = driver_for(user, driver, _given(kind, "settings", opts) if kind else {})
        op = services.create_from_input(
            user,
            name,
            row,
            made=made,
            options=_options_data(driver_class(row.kind), opts),
            engine=_engine_options(opts),
            tags=_tags(opts.get("tag") or []),
            via="cli",
            swarm=_swarm(opts),
        )
    except (services.InvalidInput, PermissionDenied) as e:
        raise CommandError(str(e)) from None
    follow(cli, op, verbose, header=f"Creating machine {name} ({op.machine.driver.kind})...")


def _swarm(opts: dict) -> dict | None:
    if opts.get("swarm_master") and not opts.get("swarm"):
        raise CommandError("--swarm-master needs --swarm CLUSTER (the cluster to manage)")
    if not opts.get("swarm"):
        return None
    return {"swarm": opts["swarm"], "swarm_role": "manager" if opts["swarm_master"] else "worker"}


def _retry(cli, machine: Machine, verbose: bool) -> None:
    """`create NAME` again after a create that failed: the same machine, its stored options
    (what the last attempt made is reused or redone)."""
    from machines.services import machines as services

    last = machine.operations.filter(kind=Operation.Kind.CREATE).order_by("-created_at").first()
    if last is None or last.status == Operation.Status.SUCCEEDED:
        raise CommandError(f'Docker machine "{machine.name}" already exists')
    if last.is_active:
        # Not ended: a command that died before a runner took it left it pending (this
        # starts one), or a runner is at it (this follows it).
        follow(cli, last, verbose, header=f"Following the create of {machine.name}, not ended.")
        return
    try:
        op = services.request_action(acting_user(), machine, Operation.Kind.CREATE, via="cli")
    except (services.OperationConflict, PermissionDenied) as e:
        raise CommandError(str(e)) from None
    why = f": {last.error.splitlines()[0]}" if last.error else ""
    follow(
        cli,
        op,
        verbose,
        header=f"Retrying the create of {machine.name} ({machine.driver.kind}), which ended "
        f"{last.status}{why}. Its options are the ones it was created with.",
    )


def _given(driver: type, source: str, opts: dict) -> dict[str, str | bool]:
    """The flags of one of the driver's forms that were given (else their environment
    variable, as docker-machine's), files read."""
    given: dict[str, str | bool] = {}
    for flag in driver.cli_flags():
        value = opts.get(_dest(flag))
        if value is None and flag.env:
            value = os.environ.get(flag.env) or None
        if flag.form != source or value is None:
            continue
        given[flag.field] = _read_file(value, flag.flag) if flag.is_file else value
    return given


def _options_data(driver: type, opts: dict) -> dict:
    """The options form's data: the flags given, the form's initial values for the others
    (the defaults docker-machine's flags had)."""
    from machines.services.drivers import options_with_defaults

    return options_with_defaults(driver.kind, _given(driver, "options", opts))


def _engine_options(opts: dict) -> dict:
    """The --engine-* and --tls-san flags as the machine's fields (the model checks them)."""
    options = {}
    for option, (field, repeated) in ENGINE_FLAGS.items():
        value = opts.get(option) or ([] if repeated else "")
        if option == "engine_opt":
            value = [v if v.startswith("--") else f"--{v}" for v in value]
        options[field] = value
    return options


def _tags(given: list[str]) -> dict[str, str]:
    """Each --tag is one key=value tag (as the model will check it)."""
    try:
        return parse_tags(given)
    except ValidationError as e:
        raise CommandError(f"Invalid tag: {one_line(e)}") from None


def _read_file(path: str, flag: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except OSError as e:
        raise CommandError(f"Cannot read {flag} {path}: {e.strerror}") from None
