"""`machine create`: docker-machine's flags, the driver's own generated from its forms."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from django import forms
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from machines.drivers import DriverError, all_drivers, driver_class, registered
from machines.drivers.base import CLIFlag
from machines.models import Driver, Machine, Operation, machine_name_validator
from machines.validation import one_line, parse_tag

from .follow import follow

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
    parser.add_argument("-v", "--verbose", action="store_true", help="stream the whole log")


def run(action: str, cli, name: str, driver: str, verbose: bool, **opts) -> None:
    from machines import operations

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
    driver_row, made = _driver_for(driver, opts)
    impl = driver_row.get_driver()
    try:
        form = impl.bind_options_form(data=_options_data(type(impl), opts))
        errors = "" if form.is_valid() else _errors(form)
    except DriverError as e:
        errors = str(e)
    if errors:
        if made:  # an account made from flags that cannot create anything is not kept
            driver_row.delete()
        raise CommandError(f"Invalid options for the {driver_row.kind} driver: {errors}")
    machine = Machine(name=name, driver=driver_row, **_engine_options(name, driver_row, opts))
    try:
        op = operations.create_machine(machine, form.cleaned_data, via="cli")
    except ValidationError as e:
        raise CommandError(f"Invalid machine: {one_line(e)}") from None
    cli.stdout.write(f"Creating machine {name} ({driver_row.kind})...")
    follow(cli, op, verbose)


def _errors(form: forms.Form) -> str:
    return "; ".join(
        " ".join(v) if k == forms.forms.NON_FIELD_ERRORS else f"{k}: {' '.join(v)}"
        for k, v in form.errors.items()
    )


def _retry(cli, machine: Machine, verbose: bool) -> None:
    """`create NAME` again after a create that failed: the same machine, its stored options
    (what the last attempt made is reused or redone)."""
    from machines import operations

    last = machine.operations.filter(kind=Operation.Kind.CREATE).order_by("-created_at").first()
    if last is None or last.status == Operation.Status.SUCCEEDED:
        raise CommandError(f'Docker machine "{machine.name}" already exists')
    try:
        op = operations.request(machine, Operation.Kind.CREATE, via="cli")
    except operations.OperationConflict as e:
        raise CommandError(str(e)) from None
    why = f": {last.error.splitlines()[0]}" if last.error else ""
    cli.stdout.write(
        f"Retrying the create of {machine.name} ({machine.driver.kind}), which ended "
        f"{last.status}{why}. Its options are the ones it was created with."
    )
    follow(cli, op, verbose)


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
    data = {
        field: f.initial
        for field, f in driver.options_form.base_fields.items()
        if f.initial is not None and not isinstance(f, forms.BooleanField)
    }
    return data | _given(driver, "options", opts)


def _driver_for(name: str, opts: dict) -> tuple[Driver, bool]:
    """A kind's driver with the settings flags given (made once, then reused with the same
    settings); else a configured driver by name, or the kind's default. True if made now."""
    kinds = registered()
    if name in kinds:
        given = driver_class(name).complete_cli_settings(
            _given(driver_class(name), "settings", opts)
        )
        if given:
            return _driver_with(name, given)
    driver = Driver.objects.filter(name=name).first() or Driver.objects.filter(kind=name).first()
    if driver is not None:
        return driver, False
    if name not in kinds:
        known = ", ".join(sorted({*kinds, *Driver.objects.values_list("name", flat=True)}))
        raise CommandError(f"Driver {name!r} not found (known: {known})")
    if driver_class(name).has_accounts:
        flags = [f.flag for f in driver_class(name).cli_flags() if f.form == "settings"]
        raise CommandError(
            f"No {name} account yet: give {flags[0]} (or add one on the Providers page)"
        )
    return Driver.objects.create(name=_free_name(name), kind=name), True


def _driver_with(kind: str, given: dict) -> tuple[Driver, bool]:
    cls = driver_class(kind)
    form = cls.settings_form(data=given)
    if not form.is_valid():
        raise CommandError(f"Invalid settings for the {kind} driver: {_errors(form)}")
    settings, secrets = cls.split_settings(form.cleaned_data)
    for driver in Driver.objects.filter(kind=kind):
        if driver.settings == settings and driver.secrets == secrets:
            return driver, False
    driver = Driver.objects.create(
        name=_free_name(kind), kind=kind, settings=settings, secrets=secrets
    )
    return driver, True


def _free_name(base: str) -> str:
    if not Driver.objects.filter(name=base).exists():
        return base
    n = 2
    while Driver.objects.filter(name=f"{base}-{n}").exists():
        n += 1
    return f"{base}-{n}"


def _engine_options(name: str, driver: Driver, opts: dict) -> dict:
    """The --engine-* and --tls-san flags, validated as the web form validates them."""
    from machines.forms import MachineForm

    data: dict[str, str] = {"name": name, "driver": str(driver.pk)}
    for option, (field, repeated) in ENGINE_FLAGS.items():
        value = opts.get(option) or ([] if repeated else "")
        if option == "engine_opt":
            value = [v if v.startswith("--") else f"--{v}" for v in value]
        data[field] = "\n".join(value) if repeated else value
    form = MachineForm(data=data)
    if not form.is_valid():
        errors = "; ".join(
            f"{k}: {' '.join(v)}" for k, v in form.errors.items() if k not in ("name", "driver")
        )
        if errors:
            raise CommandError(f"Invalid engine options: {errors}")
    options = {
        field: form.cleaned_data.get(field, [] if repeated else "")
        for field, repeated in ENGINE_FLAGS.values()
    }
    return options | {"tags": _tags(opts.get("tag") or [])}


def _tags(given: list[str]) -> dict[str, str]:
    """Each --tag is one key=value tag (as the model will check it)."""
    tags = {}
    for text in given:
        try:
            key, value = parse_tag(text)
        except ValueError as e:
            raise CommandError(f"Invalid tag: {e}") from None
        tags[key] = value
    return tags


def _read_file(path: str, flag: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except OSError as e:
        raise CommandError(f"Cannot read {flag} {path}: {e.strerror}") from None
