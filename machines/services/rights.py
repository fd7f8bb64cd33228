"""Who may do what, and where: the one check every entry path (web, sockets, CLI, the REST
API) goes through before it shows or changes anything.

A user's right on a machine is the higher of their global role (the Django groups viewer /
operator / admin) and the best role any of their teams holds on a machine group containing
the machine. A machine on which a user holds no role is invisible to them: a 404 (never a
403, which would say it exists), absent from lists, counts, searches and pushes.

`user=None` is the server's own command line (`manage.py machine ...`, `dockerdash`): whoever
runs it holds the server's files and keys already, as docker-machine's user did.
"""

from __future__ import annotations

import time

from django.contrib.auth.backends import BaseBackend
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from machines.models import Machine, Operation
from machines.models.rows import tag_q
from machines.models.teams import MachineGroup
from machines.services import roles

Kind = Operation.Kind

ADD, OPERATE, DELETE = "machines.add_machine", "machines.operate_machine", "machines.delete_machine"
VIEW = "machines.view_machine"
ORDER = (roles.VIEWER, roles.OPERATOR, roles.ADMIN)
# What a team's role allows on the machines of its groups (a team admin also reads the
# audit log of those machines). Creating machines, drivers, users and webhooks stay with
# the global roles.
_VIEW = {VIEW, "machines.view_driver", "machines.view_operation", "machines.view_operationlogline"}
MACHINE_PERMISSIONS = {
    roles.VIEWER: _VIEW,
    roles.OPERATOR: _VIEW | {OPERATE, "machines.change_machine"},
    roles.ADMIN: _VIEW | {OPERATE, "machines.change_machine", DELETE, "machines.view_auditentry"},
}


def permission_for(kind: str) -> str:
    """The permission an action asks for: create (a retry) as adding, remove as deleting."""
    if kind == Kind.CREATE:
        return ADD
    if kind == Kind.REMOVE:
        return DELETE
    return OPERATE


def best(*names: str | None) -> str | None:
    ranked = [ORDER.index(n) for n in names if n]
    return ORDER[max(ranked)] if ranked else None


def global_role(user) -> str | None:
    """The highest global role whose permissions the user holds whole (superuser: admin)."""
    if user is None:
        return roles.ADMIN
    if not getattr(user, "is_active", False) or not user.is_authenticated:
        return None
    if "_global_role" not in user.__dict__:
        held = user.get_group_permissions() | user.get_user_permissions()
        found = None
        for name in ORDER:
            if user.is_superuser or set(roles.ROLE_PERMISSIONS[name]) <= held:
                found = name
        user.__dict__["_global_role"] = found
    return user.__dict__["_global_role"]


class Grant:
    """One team role on one machine group, with the group's explicit machines."""

    def __init__(self, role: str, group: MachineGroup, machine_ids: set[int]) -> None:
        self.role, self.group, self.machine_ids = role, group, machine_ids
        self.pair = group.selector_pair

    def q(self, prefix: str = "") -> Q:
        q = Q(**{f"{prefix}pk__in": list(self.machine_ids)})
        if self.pair:
            key, value, exact = self.pair
            q |= tag_q(key, value if exact else None, f"{prefix}tags")
        return q

    def contains(self, machine_id: int | None, tags: dict) -> bool:
        if machine_id in self.machine_ids:
            return True
        if not self.pair:
            return False
        key, value, exact = self.pair
        return key in tags and (not exact or tags[key] == value)


def grants(user) -> list[Grant]:
    """The user's team roles (read once per request or socket check, kept on the user)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return []
    if "_team_grants" not in user.__dict__:
        from machines.models.teams import TeamRole

        found = []
        team_roles = TeamRole.objects.filter(team__members=user).select_related("group")
        for tr in team_roles.prefetch_related("group__machines"):
            ids = {m.pk for m in tr.group.machines.all()}
            found.append(Grant(tr.role, tr.group, ids))
        user.__dict__["_team_grants"] = found
    return user.__dict__["_team_grants"]


def sees_all(user) -> bool:
    return global_role(user) is not None


def visible_q(user, prefix: str = "") -> Q | None:
    """None: every machine; else the machines (at `prefix`) the user's teams reach."""
    if sees_all(user):
        return None
    q = Q(**{f"{prefix}pk__in": []})
    for grant in grants(user):
        q |= grant.q(prefix)
    return q


def visible(user, queryset: QuerySet, prefix: str = "") -> QuerySet:
    """The rows of `queryset` (machines, or rows whose machine sits at `prefix`, e.g.
    "machine__") this user may see."""
    q = visible_q(user, prefix)
    # No distinct(): the lookups follow single-valued keys only (a row's machine).
    return queryset if q is None else queryset.filter(q)


def visible_machines(user, machines: QuerySet | None = None) -> QuerySet:
    return visible(user, Machine.objects.all() if machines is None else machines)


def role_on_fields(user, machine_id: int | None, tags: dict) -> str | None:
    """The user's role on a machine known by its id and tags (a pushed change carries both)."""
    team = [g.role for g in grants(user) if g.contains(machine_id, tags or {})]
    return best(global_role(user), *team)


def role_on(user, machine: Machine) -> str | None:
    return role_on_fields(user, machine.pk, machine.tags)


def sees(user, fields: dict) -> bool:
    """Whether a pushed machine or container (its "id"/"machine_id" and "tags") is visible."""
    if sees_all(user):
        return True
    machine_id = fields.get("machine_id", fields.get("id"))
    return role_on_fields(user, machine_id, fields.get("tags") or {}) is not None


def allowed(user, perm: str) -> bool:
    """The permission held globally or on some machine (the page may open; each machine
    is checked again by `allowed_on`)."""
    return user is None or user.has_perm(perm)


def allowed_on(user, machine: Machine, perm: str) -> bool:
    """Global roles reach every machine; a team's role, the machines of its groups."""
    if user is None or _global_has(user, perm):
        return True
    team = best(*(g.role for g in grants(user) if g.contains(machine.pk, machine.tags or {})))
    return team is not None and perm in MACHINE_PERMISSIONS[team]


def _global_has(user, perm: str) -> bool:
    if not getattr(user, "is_active", False) or not user.is_authenticated:
        return False
    return user.is_superuser or perm in user.get_group_permissions() | user.get_user_permissions()


def require(user, perm: str, what: str) -> None:
    """Refuse (Django's PermissionDenied: a 403 on the web) unless the user holds `perm`."""
    if not allowed(user, perm):
        raise PermissionDenied(f"You may not {what}.")


def require_global(user, perm: str, what: str) -> None:
    """Refuse unless a global role gives `perm` (fleet-wide things a team's role on some
    machines must not reach, such as swarm clusters spanning any machine)."""
    if user is not None and not _global_has(user, perm):
        raise PermissionDenied(f"You may not {what}.")


def require_on(user, machine: Machine, perm: str, what: str) -> None:
    """A 404 for a machine the user cannot see, a 403 for one they may only look at."""
    if user is not None and role_on(user, machine) is None:
        refused(user, machine.name, what)
        raise Http404(f"No machine named {machine.name}.")
    if not allowed_on(user, machine, perm):
        refused(user, machine.name, what)
        raise PermissionDenied(f"You may not {what}.")


def refused(user, machine_name: str, what: str) -> None:
    """A refused attempt in the audit log: at most one per user a minute (a script trying
    every name must not grow the log without end)."""
    from django.core.cache import cache

    from machines.audit import log as audit

    audit.refusal_kept()  # (even when this minute's entry exists: one limit, not two)
    if cache.add(f"refused:{getattr(user, 'pk', None)}:{int(time.time() // 60)}", 1, 120):
        audit.record(
            audit.Action.REFUSED,
            f"refused: {what}",
            user=user,
            machine_name=machine_name[:63],
            detail="not in the user's machine groups or role",
        )


def machine_or_404(user, queryset: QuerySet | None = None, **lookup) -> Machine:
    """The machine the lookup names, if this user may see it; else Http404."""
    machines = visible_machines(user, queryset)
    machine = machines.filter(**lookup).first()
    if machine is None:
        hidden = (queryset if queryset is not None else Machine.objects).filter(**lookup).first()
        if hidden is not None:
            refused(user, hidden.name, "open a machine outside their groups")
        raise Http404("No such machine.")
    return machine


def visible_bulks(user) -> QuerySet:
    """Every bulk action for a global role; a team member's own otherwise."""
    from machines.models import BulkAction

    bulks = BulkAction.objects.all()
    return bulks if sees_all(user) else bulks.filter(requested_by=user)


def roles_of(user, machine: Machine | None = None) -> dict[str, bool]:
    """What a page or a socket shows this user: the operators' buttons, the admins' ones, and
    those that need creating machines (Retry create, Root shell: a team's admin holds the
    admins' on its machines, never these), on one machine or on any."""
    if machine is not None:
        return {
            "can_operate": allowed_on(user, machine, OPERATE),
            "can_admin": allowed_on(user, machine, DELETE),
            "can_create": allowed_on(user, machine, ADD),
        }
    can_create = allowed(user, ADD)
    return {
        "can_operate": allowed(user, OPERATE),
        "can_admin": can_create,
        "can_create": can_create,
    }


class TeamBackend(BaseBackend):
    """Django's permission checks with teams: a permission a team role gives on some
    machine is held "somewhere" (a page may open; the rows and the machine are then
    checked by this module)."""

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if obj is not None or not user_obj.is_active or user_obj.is_anonymous:
            return set()
        perms: set[str] = set()
        for grant in grants(user_obj):
            perms |= MACHINE_PERMISSIONS[grant.role]
        return perms
