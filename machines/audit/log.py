"""The audit log: who did what, written where it happens, never what was typed or any secret.

`record()` is called by the orchestrator (operations), container and engine actions, terminal
sessions and certificate downloads; the receivers below record logins, user and role changes
and provider-account changes from Django's signals. Who acted comes from the caller, else from
the web request being served (AuditMiddleware), else it is the operating-system user running
the command line (`machine ...`, `manage.py ...`).
"""

from __future__ import annotations

import contextvars
import getpass
import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from machines.models import AuditEntry, Machine

log = logging.getLogger(__name__)
Action = AuditEntry.Action

_request: contextvars.ContextVar = contextvars.ContextVar("audit_request", default=None)


class AuditMiddleware:
    """Remembers the request being served, so that signal receivers (a user changed in the
    admin, a login) know who acted and from where."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (a container's random user)
        return "unknown"


def request_address(request) -> str | None:
    from dockerdash.throttle import client_address

    return client_address(request) if request is not None else None


def _actor(user, via: str | None, request) -> tuple[object, str, str]:
    if getattr(user, "is_authenticated", False):
        return user, user.get_username(), via or "web"
    if via == "system":
        return None, "system", "system"
    if request is not None and getattr(request.user, "is_authenticated", False):
        return request.user, request.user.get_username(), via or "web"
    if via == "web" or request is not None:
        return None, "anonymous", via or "web"
    # No web request: the command line (or a management command), as the OS user.
    return None, os_user(), "cli"


def record(
    action: str,
    what: str,
    *,
    user=None,
    via: str | None = None,
    machine: Machine | None = None,
    machine_name: str = "",
    target: str = "",
    detail: str = "",
    address: str | None = None,
    username: str = "",
    operation=None,
) -> AuditEntry | None:
    """Write one entry. Never fails the action it records: a failure is logged instead."""
    request = _request.get()
    # A request authenticated by an API token: the entry names the token that acted.
    token = getattr(request, "api_token", None)
    if token is not None and via in (None, "web"):
        via = "api"
    who, name, via = _actor(user, via, request)
    try:
        return AuditEntry.objects.create(
            user=who if getattr(who, "pk", None) else None,
            username=(username or name)[:150],
            via=via[:16],
            address=address or request_address(request),
            action=action,
            what=what[:200],
            machine=machine,
            machine_name=(machine.name if machine is not None else machine_name)[:63],
            target=target[:255],
            detail=detail,
            operation=operation,
            api_token=token,
        )
    except Exception:
        log.exception("Recording %r in the audit log failed", what)
        return None


def record_operation(op, user=None, via: str = "web") -> None:
    args = ", ".join(f"{k}={v}" for k, v in sorted(op.args.items()) if k != "reason")
    reason = op.args.get("reason", "")
    record(
        Action.OPERATION,
        op.get_kind_display().lower(),
        user=user,
        via=via,
        machine=op.machine,
        machine_name=op.machine_name,
        detail="; ".join(x for x in (args, reason) if x),
        operation=op,
    )


def prune(now=None) -> int:
    """Delete the entries older than DOCKERDASH_AUDIT_RETENTION_DAYS (0 keeps them all)."""
    days = settings.AUDIT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = AuditEntry.objects.filter(at__lt=cutoff).delete()
    return deleted
