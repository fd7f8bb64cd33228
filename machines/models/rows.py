"""What a row of the machine list needs, for the list's page and for the pushes that keep
it live (live/publish.py): a machine's active operation in one query for the lot, the fields
a list's filter matches on, and the counts per state."""

from __future__ import annotations

from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact

from machines.models import Machine, Operation


def fields_of(machine: Machine) -> dict:
    """What a pushed change carries for the filters of the lists it may belong to."""
    return {
        "id": machine.pk,
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


def state_counts(machines=None) -> list[dict]:
    """How many machines (of `machines`, a user's visible ones; default all) are in each
    state, every state, zeros included."""
    machines = Machine.objects.all() if machines is None else machines
    found = dict(machines.values_list("state").annotate(n=Count("id")).order_by())
    counts = [
        {"state": value, "label": label, "count": found.get(value, 0)}
        for value, label in Machine.State.choices
    ]
    return counts


def tag_q(key: str, value: str | None = None, field: str = "tags") -> Q:
    """Rows whose tags hold `key` (equal to `value` when given). The key is only ever a JSON
    key, never part of a lookup path: `tags__{key}` would make `regex` or `a__b` a database
    lookup (a catastrophic regular expression run over every row, seen). The lists' filters
    and the machine groups' selectors (services/rights.py) both look tags up with it."""
    has = Q(**{f"{field}__has_key": key})
    return has if value is None else has & Q(Exact(KeyTextTransform(key, field), value))
