"""Login throttling on django-axes: one limit per user name, a higher one per address.

Axes sums the failures of each lockout parameter (AXES_LOCKOUT_PARAMETERS: user name, then
address) and compares the worst with one AXES_FAILURE_LIMIT. An address is shared by
everyone behind a NAT or proxy (and by every test on 127.0.0.1): locking it as soon as one
user name is would lock out the others. So failures are counted against the user-name
limit, and an address that reached its own, higher limit counts as at the limit.
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def _failures(attempts) -> int:
    return attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0


class LoginThrottle(AxesDatabaseHandler):
    def get_failures(self, request, credentials: dict | None = None) -> int:
        # One queryset per AXES_LOCKOUT_PARAMETERS entry, in its order.
        by_name, by_address = map(_failures, self.get_user_attempts(request, credentials))
        if by_address >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(by_name, settings.AXES_FAILURE_LIMIT)
        return by_name


def client_address(request: HttpRequest) -> str | None:
    """The address that connected. Behind a proxy (DOCKERDASH_BEHIND_PROXY) that is the last
    X-Forwarded-For entry, the one the proxy added; the entries before it are the client's
    own word and would let it pick a fresh address for every try."""
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")


def lockout_response(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """The login page's place while locked: what happened, for how long, how to undo it.

    Axes passes (request, response, credentials) or, in its async path, (request,
    credentials): nothing here needs either."""
    cool_off = get_cool_off(request)
    context = {
        "username": get_client_username(request) or "",
        "minutes": max(1, round(cool_off.total_seconds() / 60)) if cool_off else None,
    }
    return render(request, "registration/locked_out.html", context, status=429)
