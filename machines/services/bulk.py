"""Bulk actions: one operation per machine of a selection (or of a list's filter), run by the
runners at most BULK_CONCURRENCY at a time (runner.claim), followed on one summary page.

Each machine's operation is requested as a single one would be (operations.request): the
same checks, the same log; a machine the action does not apply to, or that is busy, is
skipped with its reason.
"""

from __future__ import annotations

from django import forms
from django.db import transaction

from machines import live
from machines.models import BulkAction, Machine, Operation
from machines.operations import actions as operations
from machines.services import rights
from machines.services.listing import MachineFilterForm

Kind = Operation.Kind
# What a selection can be asked to do (rm: admins only, with the count typed).
KINDS = (
    Kind.START,
    Kind.STOP,
    Kind.RESTART,
    Kind.PROVISION,
    Kind.REGENERATE_CERTS,
    Kind.UPGRADE,
    Kind.REMOVE,
)
MAX_SELECTED = 10000


def choices(*, admin: bool) -> list[tuple[str, str]]:
    return [
        (kind, operations.ACTIONS[kind].label) for kind in KINDS if admin or kind != Kind.REMOVE
    ]


class BulkForm(forms.Form):
    """What to do, and to which machines: those selected, or all matching a filter (given as
    the list's own query parameters)."""

    action = forms.ChoiceField()
    scope = forms.ChoiceField(choices=[("selected", "selected"), ("filter", "filter")])
    confirm = forms.CharField(required=False, max_length=10)

    def __init__(self, data, *, admin: bool, user) -> None:
        super().__init__(data)
        self.fields["action"].choices = choices(admin=admin)
        # Only machines this user sees: the others are never found, let alone acted on.
        self.filter = MachineFilterForm(data, user=user)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if data["scope"] == "filter":
            machines = list(self.filter.queryset())
            self.selection = f"all matching {self.filter.describe()}"
        else:
            # The names of the rows ticked (any text: only existing machines are found).
            names = self.data.getlist("machine")[:MAX_SELECTED]
            found = Machine.objects.select_related("driver").filter(name__in=names)
            machines = list(rights.visible_machines(self.filter.user, found))
            self.selection = f"{len(machines)} selected"
        if not machines:
            raise forms.ValidationError("No machine is selected: nothing was done.")
        if data["action"] == Kind.REMOVE and data.get("confirm", "").strip() != str(len(machines)):
            raise forms.ValidationError(
                f"Type {len(machines)} (the number of machines) to remove them: nothing was "
                "removed."
            )
        self.machines = machines
        return data


def request_bulk(
    kind: str, machines: list[Machine], *, user=None, selection: str = "", args=None
) -> BulkAction:
    """One pending operation per machine the action applies to; the others skipped."""
    rights.require(user, rights.permission_for(kind), f"{kind} machines")
    bulk = BulkAction.objects.create(
        kind=kind,
        args=args or {},
        requested_by=user if getattr(user, "is_authenticated", False) else None,
        selection=selection[:300],
    )
    skipped = []
    perm = rights.permission_for(kind)
    for machine in machines:
        if not rights.allowed_on(user, machine, perm):
            skipped.append([machine.name, f"You may not {kind} {machine.name}."])
            continue
        try:
            with transaction.atomic():
                operations.request(machine, kind, user=user, via="bulk", args=args, bulk=bulk)
        except operations.OperationConflict as e:
            skipped.append([machine.name, str(e)])
    bulk.skipped = skipped
    bulk.save(update_fields=["skipped"])
    live.bulk_changed(bulk)
    return bulk


def args_for(kind: str) -> dict:
    """The arguments a bulk gives each operation (what the single action's form gives)."""
    if kind == Kind.REMOVE:
        return {"force": False, "purge": False}
    return {}
