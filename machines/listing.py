"""The machine list at scale: search, filters, sort and pages, all on the server.

One filter (from the query string, so a view is bookmarkable) picks the rows of the page,
of its websocket's snapshot, and which pushed changes that socket forwards: `rows()` in SQL,
`matches()` in Python on the fields a change carries, with the same meaning.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact
from django.utils.http import urlencode

from .drivers import all_drivers
from .models import Machine, Operation
from .validation import parse_tag

SORTS = {
    "name": ("name",),
    "-name": ("-name",),
    "state": ("state", "name"),
    "driver": ("driver__kind", "name"),
    "-last_seen": ("-last_seen", "name"),
    "last_seen": ("last_seen", "name"),
    "-created": ("-created_at", "name"),
}
SORT_LABELS = {
    "name": "name",
    "-name": "name, Z to A",
    "state": "state",
    "driver": "driver",
    "-last_seen": "seen most recently",
    "last_seen": "seen longest ago",
    "-created": "newest",
}
MAX_WORDS = 6


def page_size() -> int:
    return getattr(settings, "MACHINE_LIST_PAGE_SIZE", 50)


class MachineFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "name, driver, state, tag or error",
                "autocomplete": "off",
            }
        ),
    )
    state = forms.ChoiceField(required=False)
    driver = forms.ChoiceField(required=False)
    tag = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"placeholder": "tag: key=value", "autocomplete": "off"}),
    )
    sort = forms.ChoiceField(required=False, choices=list(SORT_LABELS.items()))
    page = forms.IntegerField(required=False, min_value=1)

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data or {}, *args, **kwargs)
        self.fields["state"].choices = [("", "any state"), *Machine.State.choices]
        self.fields["driver"].choices = [("", "any driver")] + [
            (kind, kind) for kind, _ in all_drivers()
        ]
        self.is_valid()

    def clean_tag(self) -> tuple[str, str, bool] | None:
        """(key, value, whether a value was given): `key` alone means "has this tag"."""
        text = self.cleaned_data["tag"].strip()
        if not text:
            return None
        try:
            key, value = parse_tag(text)
        except ValueError as e:
            raise forms.ValidationError(str(e)) from None
        return key, value, "=" in text

    def value(self, name: str):
        return self.cleaned_data.get(name) or ""

    @property
    def words(self) -> list[str]:
        """The search's words: each must match; `key=value` is a tag (case kept)."""
        words = self.value("q").split()[:MAX_WORDS]
        return [w if "=" in w else w.lower() for w in words]

    # -- SQL ---------------------------------------------------------------------------

    def filter(self, machines: QuerySet, *, with_state: bool = True) -> QuerySet:
        for word in self.words:
            machines = machines.filter(_word_q(word))
        if with_state and (state := self.value("state")):
            machines = machines.filter(state=state)
        if kind := self.value("driver"):
            machines = machines.filter(driver__kind=kind)
        if tag := self.cleaned_data.get("tag"):
            key, value, exact = tag
            machines = machines.filter(tag_q(key, value if exact else None))
        return machines

    def queryset(self) -> QuerySet:
        machines = Machine.objects.select_related("driver")
        order = SORTS.get(self.value("sort") or "name", SORTS["name"])
        return self.filter(machines).order_by(*order)

    def get_page(self):
        """This view's page of machines, each with its active operation (two queries)."""
        paginator = Paginator(self.queryset(), page_size())
        page = paginator.get_page(self.value("page") or 1)
        page.object_list = with_operations(list(page.object_list))
        return page

    # -- Python, for pushed changes --------------------------------------------------------

    def matches(self, fields: dict) -> bool:
        """Whether a pushed machine (see `fields_of`) belongs in this view."""
        for word in self.words:
            if not _word_matches(word, fields):
                return False
        if (state := self.value("state")) and fields["state"] != state:
            return False
        if (kind := self.value("driver")) and fields["kind"] != kind:
            return False
        if tag := self.cleaned_data.get("tag"):
            key, value, exact = tag
            if key not in fields["tags"] or (exact and fields["tags"][key] != value):
                return False
        return True

    def query_string(self, **override) -> str:
        """The view's query string ("" or "?..."), with some parameters replaced."""
        params = {
            "q": self.value("q").strip(),
            "state": self.value("state"),
            "driver": self.value("driver"),
            "tag": self.data.get("tag", "").strip() if self.cleaned_data.get("tag") else "",
            "sort": self.value("sort") if self.value("sort") != "name" else "",
            "page": self.value("page") if self.value("page") != 1 else "",
        } | override
        params = {k: v for k, v in params.items() if v not in ("", None, 1)}
        return f"?{urlencode(params)}" if params else ""

    def page_link(self, number: int) -> str:
        return self.query_string(page=number) or "?"

    @property
    def is_filtered(self) -> bool:
        return any(self.value(k) for k in ("q", "state", "driver")) or bool(
            self.cleaned_data.get("tag")
        )

    def describe(self) -> str:
        """The filter in words, for a bulk action's summary."""
        parts = [f"{k}={self.data.get(k, '').strip()}" for k in ("q", "state", "driver", "tag")]
        return ", ".join(p for p in parts if not p.endswith("=")) or "every machine"


def tag_q(key: str, value: str | None = None, field: str = "tags") -> Q:
    """Rows whose tags hold `key` (equal to `value` when given). The key is only ever a JSON
    key, never part of a lookup path: `tags__{key}` would make `regex` or `a__b` a database
    lookup (a catastrophic regular expression run over every row, seen)."""
    has = Q(**{f"{field}__has_key": key})
    return has if value is None else has & Q(Exact(KeyTextTransform(key, field), value))


def _word_q(word: str) -> Q:
    key, sep, value = word.partition("=")
    if sep:
        try:
            parse_tag(word)
        except ValueError:
            return Q(pk__in=[])
        return tag_q(key, value or None)
    return (
        Q(name__icontains=word)
        | Q(driver__kind__icontains=word)
        | Q(driver__name__icontains=word)
        | Q(state__icontains=word)
        | Q(last_error__icontains=word)
        | Q(tags__icontains=word)
    )


def _word_matches(word: str, fields: dict) -> bool:
    key, sep, value = word.partition("=")
    tags = fields["tags"]
    if sep:
        return key in tags and (not value or tags[key] == value)
    texts = (fields["name"], fields["kind"], fields["driver"], fields["state"], fields["error"])
    return any(word in t.lower() for t in texts) or any(
        word in k.lower() or word in v.lower() for k, v in tags.items()
    )


def fields_of(machine: Machine) -> dict:
    """What a pushed change carries for the filters of the lists it may belong to."""
    return {
        "name": machine.name,
        "kind": machine.driver.kind,
        "driver": machine.driver.name,
        "state": machine.state,
        "error": machine.last_error or "",
        "tags": dict(machine.tags or {}),
    }


def with_operations(machines: list[Machine]) -> list[Machine]:
    """Attach each machine's active operation (one query for the lot, not one a row)."""
    active = {
        op.machine_id: op
        for op in Operation.objects.filter(
            machine_id__in=[m.pk for m in machines], status__in=Operation.ACTIVE
        )
    }
    for machine in machines:
        machine.__dict__["_active_operation"] = active.get(machine.pk)
    return machines


def state_counts() -> list[dict]:
    """How many machines are in each state (every state, zeros included), and the total."""
    found = dict(Machine.objects.values_list("state").annotate(n=Count("id")).order_by())
    counts = [
        {"state": value, "label": label, "count": found.get(value, 0)}
        for value, label in Machine.State.choices
    ]
    return counts
