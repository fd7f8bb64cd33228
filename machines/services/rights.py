"""Who may do what: the one check every entry path (web, sockets, CLI, a future REST API)
goes through before it changes anything.

`user=None` is the server's own command line (`manage.py machine ...`, `dockerdash`): whoever
runs it holds the server's files and keys already, as docker-machine's user did.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from machines.models import Operation

Kind = Operation.Kind

ADD, OPERATE, DELETE = "machines.add_machine", "machines.operate_machine", "machines.delete_machine"


def permission_for(kind: str) -> str:
    """The permission an action asks for: create (a retry) as adding, remove as deleting."""
    if kind == Kind.CREATE:
        return ADD
    if kind == Kind.REMOVE:
        return DELETE
    return OPERATE


def allowed(user, perm: str) -> bool:
    return user is None or user.has_perm(perm)


def require(user, perm: str, what: str) -> None:
    """Refuse (Django's PermissionDenied: a 403 on the web) unless the user holds `perm`."""
    if not allowed(user, perm):
        raise PermissionDenied(f"You may not {what}.")


def roles_of(user) -> dict[str, bool]:
    """What a page or a socket shows this user: the operators' buttons, the admins' ones."""
    return {"can_operate": allowed(user, OPERATE), "can_admin": allowed(user, ADD)}
