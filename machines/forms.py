from __future__ import annotations

import re

from django import forms

from .drivers import DriverError
from .models import Driver, Machine

KEY_VALUE_RE = re.compile(r"^[A-Za-z0-9_.\-/]+=.*$")


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
                if not self.pattern.match(line):
                    raise forms.ValidationError(
                        f"{line!r} is not of the form {self.example}.", code="invalid"
                    )
        return lines


class MachineForm(forms.ModelForm):
    """The fields every machine has; the driver's own fields come from its options form."""

    engine_labels = LinesField(
        label="Engine labels", pattern=KEY_VALUE_RE, example="key=value", help_text="key=value"
    )
    engine_insecure_registries = LinesField(label="Insecure registries")
    engine_registry_mirrors = LinesField(label="Registry mirrors")
    engine_env = LinesField(label="Engine environment", pattern=KEY_VALUE_RE, example="KEY=value")
    engine_opts = LinesField(label="Extra daemon flags", help_text="e.g. --log-level=warn")
    tls_san = LinesField(label="Extra TLS SANs")

    class Meta:
        model = Machine
        fields = [
            "name",
            "driver",
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


def options_form_for(driver: Driver | None, data=None) -> forms.Form | None:
    if driver is None:
        return None
    try:
        form_class = driver.get_driver().options_form
    except DriverError:
        return None
    return form_class(data, prefix="opt")


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
