"""The one place the REST API reaches the rest of dockerdash: the functions the pages and the
`machine` command line call (never their views). When machines.services lands, this module
is re-pointed at it and nothing else in machines/api changes."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from machines import containers, live, operations
from machines.forms import MachineForm, TagsForm, options_form_for
from machines.models import Driver, Machine, Operation

OperationConflict = operations.OperationConflict
ContainerActionError = containers.ContainerActionError
CONTAINER_ACTIONS = containers.CONTAINER_ACTIONS
ACTIONS = operations.BUTTONS
VIA = "api"

# MachineForm's list fields take one item a line, as the page's text areas.
LIST_FIELDS = (
    "tags",
    "engine_labels",
    "engine_insecure_registries",
    "engine_registry_mirrors",
    "engine_env",
    "engine_opts",
    "tls_san",
)


def _form_errors(*forms) -> str:
    words = []
    for form in forms:
        if form is None:
            continue
        for field, errors in form.errors.items():
            label = "" if field == "__all__" else f"{field}: "
            words += [f"{label}{e}" for e in errors]
    return " ".join(words)


def create_machine(user, data: dict) -> Operation:
    """A machine from the create page's two forms (the machine's, the driver's options),
    given as JSON; ValidationError in the forms' words."""
    driver = Driver.objects.filter(name=data.get("driver") or "").first()
    if driver is None:
        raise ValidationError(f"No driver named {data.get('driver')!r}: GET /api/v1/drivers.")
    form_data = {k: v for k, v in data.items() if k not in ("driver", "options")}
    for field in LIST_FIELDS:
        value = form_data.get(field)
        if isinstance(value, dict):
            value = [f"{k}={v}" for k, v in value.items()]
        if isinstance(value, list):
            form_data[field] = "\n".join(map(str, value))
    form_data["driver"] = driver.pk
    options = data.get("options") or {}
    options_data = {f"opt-{k}": _form_value(v) for k, v in options.items()}
    form = MachineForm(form_data)
    options_form = options_form_for(driver, options_data)
    if options_form is None:
        raise ValidationError(f"The driver {driver.name} cannot be used now.")
    if not (form.is_valid() & options_form.is_valid()):
        raise ValidationError(_form_errors(form, options_form))
    machine = form.save(commit=False)
    return operations.create_machine(machine, options_form.cleaned_data, user=user, via=VIA)


def _form_value(value):
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, list):
        return "\n".join(map(str, value))
    return "" if value is None else str(value)


def request_action(user, machine: Machine, kind: str, args: dict | None = None) -> Operation:
    return operations.request(machine, kind, user=user, via=VIA, args=args)


def cancel(op: Operation) -> bool:
    return operations.cancel(op)


def set_tags(machine: Machine, tags: dict[str, str] | list[str]) -> Machine:
    """Replace a machine's tags, validated as the page's tags form does."""
    words = [f"{k}={v}" for k, v in tags.items()] if isinstance(tags, dict) else list(tags)
    form = TagsForm({"tags": "\n".join(words)}, instance=machine)
    if not form.is_valid():
        raise ValidationError(_form_errors(form))
    form.save()
    live.machine_changed(machine)
    return machine


def container_action(user, machine: Machine, container_id: str, action: str) -> str:
    return containers.container_action(machine, container_id, action, user)


def inspect(machine: Machine) -> dict:
    from machines.cli.ls import _inspect

    return _inspect(machine)


def option_fields(driver: Driver) -> list[dict]:
    """A driver's create options as its form defines them (name, type, required, choices)."""
    form = options_form_for(driver)
    if form is None:
        return []
    return [
        {
            "name": name,
            "type": type(field).__name__.removesuffix("Field").lower() or "char",
            "required": field.required,
            "help": str(field.help_text or field.label or name),
            "choices": [str(c[0]) for c in getattr(field, "choices", [])][:200],
        }
        for name, field in form.fields.items()
    ]
