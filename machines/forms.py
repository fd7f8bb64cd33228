from __future__ import annotations

import re

from django import forms
from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Q
from django.utils.http import urlencode

from .drivers import DriverError, all_drivers, driver_class
from .listing import tag_q
from .models import Container, Driver, Machine
from .validation import ENV_RE, LABEL_RE, parse_tag


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


def parse_tags(words: list[str]) -> dict[str, str]:
    """key=value words as tags; a ValidationError naming the first that is not one."""
    tags: dict[str, str] = {}
    for word in words:
        try:
            key, value = parse_tag(word)
        except ValueError as e:
            raise forms.ValidationError(f"{e}.", code="invalid_tag") from None
        tags[key] = value
    return tags


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

    def save_with(self, settings_form: forms.Form) -> Driver:
        """The account with its settings; the secrets among them stored encrypted."""
        account = self.save(commit=False)
        account.settings, account.secrets = driver_class(account.kind).split_settings(
            settings_form.cleaned_data
        )
        account.full_clean()
        account.save()
        return account


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


class ContainerFilterForm(forms.Form):
    """The container tables' filter: a search, a state, the machines' tag and driver, a sort
    and a page, from the query string.

    The same filter picks the rows of a page, of a websocket's snapshot, and which pushed
    changes a socket forwards (a container that stops matching is removed from the view).
    """

    STATES = ["running", "paused", "restarting", "exited", "created", "dead"]
    SORTS = {
        "": ("-created", "name"),
        "name": ("name", "machine__name"),
        "machine": ("machine__name", "name"),
        "state": ("state", "name"),
        "image": ("image", "name"),
    }

    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "name, image or machine", "autocomplete": "off"}
        ),
    )
    state = forms.ChoiceField(
        required=False, choices=[("", "any state")] + [(s, s) for s in STATES]
    )
    tag = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"placeholder": "machine tag: key=value", "autocomplete": "off"}
        ),
    )
    driver = forms.ChoiceField(required=False)
    sort = forms.ChoiceField(
        required=False,
        choices=[("", "newest"), *((k, k) for k in ("name", "machine", "state", "image"))],
    )
    page = forms.IntegerField(required=False, min_value=1)

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data or {}, *args, **kwargs)
        self.fields["driver"].choices = [("", "any driver")] + [(k, k) for k, _ in all_drivers()]
        self.is_valid()

    def clean_tag(self) -> tuple[str, str, bool] | None:
        text = self.cleaned_data["tag"].strip()
        if not text:
            return None
        try:
            key, value = parse_tag(text)
        except ValueError as e:
            raise forms.ValidationError(str(e)) from None
        return key, value, "=" in text

    @property
    def query(self) -> str:
        return self.cleaned_data.get("q", "").strip().lower()

    @property
    def wanted_state(self) -> str:
        return self.cleaned_data.get("state", "")

    def rows(self, machine: Machine | None = None):
        """The containers of a table, newest first as in `docker ps -a` (or as sorted)."""
        containers = Container.objects.select_related("machine")
        if machine is not None:
            containers = containers.filter(machine=machine)
        return self.filter(containers).order_by(*self.SORTS[self.cleaned_data.get("sort", "")])

    def get_page(self, machine: Machine | None = None):
        size = getattr(settings, "CONTAINER_LIST_PAGE_SIZE", 100)
        return Paginator(self.rows(machine), size).get_page(self.cleaned_data.get("page") or 1)

    def filter(self, containers):
        if q := self.query:
            containers = containers.filter(
                Q(name__icontains=q) | Q(image__icontains=q) | Q(machine__name__icontains=q)
            )
        if state := self.wanted_state:
            containers = containers.filter(state=state)
        if kind := self.cleaned_data.get("driver"):
            containers = containers.filter(machine__driver__kind=kind)
        if tag := self.cleaned_data.get("tag"):
            key, value, exact = tag
            containers = containers.filter(tag_q(key, value if exact else None, "machine__tags"))
        return containers

    def matches(self, fields: dict) -> bool:
        """Whether a pushed container (its name, image, state, machine) is in this view."""
        q = self.query
        if q and not any(q in (fields.get(k) or "").lower() for k in ("name", "image", "machine")):
            return False
        if (kind := self.cleaned_data.get("driver")) and fields.get("kind") != kind:
            return False
        if tag := self.cleaned_data.get("tag"):
            key, value, exact = tag
            tags = fields.get("tags") or {}
            if key not in tags or (exact and tags[key] != value):
                return False
        return not self.wanted_state or fields.get("state") == self.wanted_state

    def query_string(self, **override) -> str:
        data = self.cleaned_data
        params = {
            "q": data.get("q", "").strip(),
            "state": self.wanted_state,
            "tag": self.data.get("tag", "").strip() if data.get("tag") else "",
            "driver": data.get("driver", ""),
            "sort": data.get("sort", ""),
            "page": data.get("page") or "",
        } | override
        params = {k: v for k, v in params.items() if v not in ("", None, 1)}
        return f"?{urlencode(params)}" if params else ""

    def page_link(self, number: int) -> str:
        return self.query_string(page=number) or "?"
