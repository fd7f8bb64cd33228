"""The machine list at scale: search, filters, sort and pages, all on the server.

One filter (from the query string, so a view is bookmarkable) picks the rows of the page,
of its websocket's snapshot, and which pushed changes that socket forwards: `rows()` in SQL,
`matches()` in Python on the fields a change carries, with the same meaning.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.utils.http import urlencode

from machines.drivers import all_drivers
from machines.models import Container, Machine
from machines.models.rows import tag_q, with_operations
from machines.services import rights
from machines.validation import parse_tag, tag_filter

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

    def __init__(self, data=None, *args, user, **kwargs):
        # Whose view: only the machines this user may see (None: the server's own CLI).
        self.user = user
        super().__init__(data or {}, *args, **kwargs)
        self.fields["state"].choices = [("", "any state"), *Machine.State.choices]
        self.fields["driver"].choices = [("", "any driver")] + [
            (kind, kind) for kind, _ in all_drivers()
        ]
        self.is_valid()

    def clean_tag(self) -> tuple[str, str, bool] | None:
        return tag_filter(self.cleaned_data["tag"])

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
        machines = rights.visible_machines(self.user, Machine.objects.select_related("driver"))
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
        if not rights.sees(self.user, fields):
            return False
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

    def __init__(self, data=None, *args, user, **kwargs):
        self.user = user
        super().__init__(data or {}, *args, **kwargs)
        self.fields["driver"].choices = [("", "any driver")] + [(k, k) for k, _ in all_drivers()]
        self.is_valid()

    def clean_tag(self) -> tuple[str, str, bool] | None:
        return tag_filter(self.cleaned_data["tag"])

    @property
    def query(self) -> str:
        return self.cleaned_data.get("q", "").strip().lower()

    @property
    def wanted_state(self) -> str:
        return self.cleaned_data.get("state", "")

    def rows(self, machine: Machine | None = None):
        """The containers of a table, newest first as in `docker ps -a` (or as sorted)."""
        containers = rights.visible(
            self.user, Container.objects.select_related("machine"), "machine__"
        )
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
        if not rights.sees(self.user, fields):
            return False
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
