"""Editing teams and machine groups (global admins): each change checked by the model and
recorded in the audit log; what a selector matches, for the page's live preview."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from machines.audit import log as audit
from machines.models import Machine
from machines.models.teams import ROLE_CHOICES, MachineGroup, Team, TeamRole
from machines.services import rights
from machines.services.errors import InvalidInput
from machines.validation import one_line, tag_filter

MANAGE = "auth.change_user"  # who manages users manages their teams


def preview(selector: str, names: list[str] = ()) -> tuple[int, list[str]]:
    """How many machines a selector (and explicit names) picks, and the first few names;
    a ValidationError in one sentence for a selector that is not one."""
    tag_filter(selector)
    # The same query the rights use, so the preview is what the group will give.
    q = rights.Grant("viewer", MachineGroup(selector=selector), set()).q()
    found = Machine.objects.filter(q | Q(name__in=list(names))).order_by("name")
    names_found = found.values_list("name", flat=True)
    return names_found.count(), list(names_found[:10])


def save_group(user, name: str, selector: str, machine_names: list[str]) -> MachineGroup:
    rights.require(user, MANAGE, "edit machine groups")
    group = MachineGroup.objects.filter(name=name).first() or MachineGroup(name=name)
    before = (group.selector, sorted(m.name for m in group.machines.all())) if group.pk else None
    group.selector = selector.strip()
    try:
        group.full_clean()
    except ValidationError as e:
        raise InvalidInput(f"Invalid machine group: {one_line(e)}") from None
    with transaction.atomic():
        group.save()
        group.machines.set(Machine.objects.filter(name__in=machine_names))
    after = (group.selector, sorted(m.name for m in group.machines.all()))
    if after != before:
        audit.record(
            audit.Action.TEAM,
            "changed machine group" if before else "created machine group",
            user=user,
            target=group.name,
            detail=f"selector {group.selector or '(none)'}; machines {', '.join(after[1]) or '-'}",
        )
    return group


def save_team(user, name: str, members: list, roles: dict[str, str]) -> Team:
    """A team, its members, and its role per machine group name ("" removes it)."""
    rights.require(user, MANAGE, "edit teams")
    valid = {r for r, _ in ROLE_CHOICES}
    if bad := [r for r in roles.values() if r and r not in valid]:
        raise InvalidInput(f"{bad[0]!r} is not a role: use viewer, operator or admin.")
    team, created = Team.objects.get_or_create(name=name.strip())
    with transaction.atomic():
        team.members.set(members)
        for group in MachineGroup.objects.filter(name__in=list(roles)):
            role = roles[group.name]
            if role:
                TeamRole.objects.update_or_create(team=team, group=group, defaults={"role": role})
            else:
                TeamRole.objects.filter(team=team, group=group).delete()
    given = ", ".join(f"{g}: {r}" for g, r in sorted(roles.items()) if r) or "no role"
    audit.record(
        audit.Action.TEAM,
        "created team" if created else "changed team",
        user=user,
        target=team.name,
        detail=f"members {', '.join(sorted(str(m) for m in members)) or '-'}; {given}",
    )
    return team
