from __future__ import annotations

import re

from django import forms

from machines.drivers import DriverError, all_drivers, driver_class
from machines.models import Driver, Machine
from machines.validation import ENV_RE, LABEL_RE, parse_tags


class LinesField(forms.CharField):
    """One value a line in a textarea; a list in Python."""

    widget = forms.Textarea(attrs={"rows": 2})

    def __init__(self, *, pattern: re.Pattern | None = None, example: str = "", **kw):
        self.pattern, self.example = pattern, example
        kw.setdefault("required", False)
        super().__init__(**kw)

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value) -> list[str]:
        lines = [line.strip() for line in (value or "").splitlines() if line.strip()]
        if self.pattern:
            for line in lines:
                if not self.pattern.fullmatch(line):
                    raise forms.ValidationError(
                        f"{line!r} is not of the form {self.example}.", code="invalid"
                    )
        return lines


class TagsField(forms.CharField):
    """key=value tags, one a line (or separated by spaces or commas); a dict in Python."""

    widget = forms.Textarea(attrs={"rows": 2, "placeholder": "env=prod\nteam=web"})

    def __init__(self, **kw):
        kw.setdefault("required", False)
        kw.setdefault("help_text", "key=value, one a line; search and filter by them")
        super().__init__(**kw)

    def prepare_value(self, value):
        if isinstance(value, dict):
            return "\n".join(f"{k}={v}" for k, v in sorted(value.items()))
        return value

    def to_python(self, value) -> dict[str, str]:
        return parse_tags((value or "").replace(",", " ").split())


class TagsForm(forms.ModelForm):
    """A machine's tags, edited on its page."""

    tags = TagsField(label="Tags")

    class Meta:
        model = Machine
        fields = ["tags"]


class MachineForm(forms.ModelForm):
    """The fields every machine has; the driver's own fields come from its options form."""

    engine_labels = LinesField(
        label="Engine labels", pattern=LABEL_RE, example="key=value", help_text="key=value"
    )
    engine_insecure_registries = LinesField(label="Insecure registries")
    engine_registry_mirrors = LinesField(label="Registry mirrors")
    engine_env = LinesField(label="Engine environment", pattern=ENV_RE, example="KEY=value")
    engine_opts = LinesField(label="Extra daemon flags", help_text="e.g. --log-level=warn")
    tls_san = LinesField(label="Extra TLS SANs")
    tags = TagsField(label="Tags")
    swarm = forms.CharField(
        label="Join cluster",
        required=False,
        max_length=41,
        help_text="A cluster's name; as a manager, a name not taken yet starts a new cluster.",
    )
    swarm_role = forms.ChoiceField(
        label="Join as", choices=[("worker", "worker"), ("manager", "manager")], required=False
    )

    class Meta:
        model = Machine
        fields = [
            "name",
            "driver",
            "tags",
            "engine_labels",
            "engine_insecure_registries",
            "engine_registry_mirrors",
            "engine_storage_driver",
            "engine_env",
            "engine_opts",
            "engine_install_url",
            "tls_san",
        ]
        widgets = {"name": forms.TextInput(attrs={"autofocus": True, "placeholder": "web-1"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["driver"].queryset = Driver.objects.order_by("name")
        self.fields["driver"].empty_label = None

    def clean_engine_opts(self) -> list[str]:
        opts = self.cleaned_data["engine_opts"]
        for opt in opts:
            if not opt.startswith("--"):
                raise forms.ValidationError(f"{opt!r} is not a daemon flag (--name[=value]).")
        return opts


def options_form_for(driver: Driver | None, data=None, initial=None) -> forms.Form | None:
    """The driver's options form; a provider account fills its choices from its API (with
    `initial` as what the page had chosen so far, when a choice asks for the fields again)."""
    if driver is None:
        return None
    try:
        impl = driver.get_driver()
    except DriverError:
        return None
    return impl.bind_options_form(data, prefix="opt", initial=initial)


def account_kinds() -> list[tuple[str, str]]:
    return [(kind, cls.label) for kind, cls in all_drivers() if cls.has_accounts]


class ProviderAccountForm(forms.ModelForm):
    """A provider account: a name and a kind; its token and URL come from the kind's
    settings form (`settings_form_for`)."""

    class Meta:
        model = Driver
        fields = ["name", "kind"]
        widgets = {"name": forms.TextInput(attrs={"placeholder": "do-prod"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = account_kinds()
        self.fields["kind"].label = "Provider"

    def settings_form(self, data=None) -> forms.Form | None:
        kind = (self.data.get("kind") if self.is_bound else self.initial.get("kind")) or ""
        if kind not in dict(account_kinds()):
            return None
        return driver_class(kind).settings_form(data, prefix="set")


class ConfirmRemoveForm(forms.Form):
    confirm = forms.CharField(label="Type the machine's name to confirm")

    def __init__(self, *args, machine: Machine, **kwargs):
        super().__init__(*args, **kwargs)
        self.machine = machine

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value != self.machine.name:
            raise forms.ValidationError(f"Type {self.machine.name!r} to remove this machine.")
        return value
