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
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
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
            response = self.get_response(request)
            if response.status_code == 403 and not getattr(request, "_audit_refusal_kept", 0):
                why = getattr(request, "_audit_refusal", "") or "forbidden"
                record_refusal(f"refused {request.method} {request.path}"[:200], detail=why)
            return response
        finally:
            _request.reset(token)

    def process_exception(self, request, exception) -> None:
        # The reason a view gave ("Only admins remove machines."), for the refusal's entry.
        if isinstance(exception, PermissionDenied):
            request._audit_refusal = str(exception)


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
    api_token=None,
) -> AuditEntry | None:
    """Write one entry. Never fails the action it records: a failure is logged instead."""
    request = _request.get()
    # A request (or a socket: api_token) authenticated by an API token: the entry names it.
    token = api_token or getattr(request, "api_token", None)
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


def record_refusal(what: str, *, user=None, address: str | None = None, detail: str = "") -> None:
    """A refused request or socket, at most AUDIT_REFUSALS_PER_MINUTE a minute for one user (or,
    anonymous, one address): a flood of refusals must not grow the log without end."""
    request = _request.get()
    who, _, _ = _actor(user, "web", request)
    address = address or request_address(request)
    key = f"audit-refusals:{getattr(who, 'pk', None) or address or 'unknown'}"
    cache.add(key, 0, timeout=60)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        count = 1
    if count <= settings.AUDIT_REFUSALS_PER_MINUTE:
        record(Action.REFUSED, what, user=user, via="web", address=address, detail=detail)


def refusal_kept() -> None:
    """The request under way had its refusal recorded already (by the rights check, with
    its machine): the middleware's entry for its 403 would say it twice."""
    request = _request.get()
    if request is not None:
        request._audit_refusal_kept = True


def record_socket_refusal(scope: dict, user) -> None:
    """A websocket refused (not logged in, not allowed, no such object), as a refusal."""
    client = scope.get("client") or ("", 0)
    who = user if getattr(user, "is_authenticated", False) else None
    what = f"refused socket {scope.get('path', '')}"[:200]
    record_refusal(what, user=who, address=client[0] or None, detail="websocket")


def record_tags(machine: Machine, before: dict, after: dict, via: str | None = None) -> None:
    """A machine's tags changed (by the page or `machine tag`): which were set and removed."""
    changes = [f"{k}={v}" for k, v in sorted(after.items()) if before.get(k) != v]
    changes += [f"-{k}" for k in sorted(before) if k not in after]
    if changes:
        record(Action.TAGS, "changed tags", via=via, machine=machine, detail=" ".join(changes))


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
