"""Minting, revoking and checking API tokens; what a token may do (its scope as a role
ceiling on its user's own rights); the per-token rate limit.

The "API tokens" page, `manage.py api_token` and the API's Bearer authentication all call
these functions, so a rule (never above the user's role, expiry required) holds everywhere.
"""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from machines.audit import log as audit
from machines.models import ApiToken, Machine
from machines.models.tokens import PREFIX, digest_of
from machines.services import roles

Scope = ApiToken.Scope
SCOPE_ROLE = {Scope.READ: roles.VIEWER, Scope.OPERATE: roles.OPERATOR, Scope.ADMIN: roles.ADMIN}
SCOPE_ORDER = [Scope.READ, Scope.OPERATE, Scope.ADMIN]
TOKEN_RE = re.compile(rf"\A{PREFIX}([0-9a-f]{{12}})_[A-Za-z0-9_-]{{20,64}}\Z")
DURATION_RE = re.compile(r"\A(\d{1,4})([dhw]?)\Z")


class TokenError(Exception):
    """Why a token cannot be made or used, in one sentence."""


def highest_scope(user) -> str | None:
    """The widest scope this user may give a token: their own role."""
    if not getattr(user, "is_active", False):
        return None
    for scope in reversed(SCOPE_ORDER):
        if all(user.has_perm(p) for p in roles.ROLE_PERMISSIONS[SCOPE_ROLE[scope]]):
            return scope
    return None


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `2w` or a number of days."""
    match = DURATION_RE.match(text.strip())
    if not match or int(match[1]) == 0:
        raise TokenError(f"{text!r} is not a duration: write days like 30d (or 12h, 2w).")
    unit = {"": "days", "d": "days", "h": "hours", "w": "weeks"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def mint(
    user, name: str, scope: str, *, expires_in: timedelta | None = None, selector: str = ""
) -> tuple[ApiToken, str]:
    """A new token and its secret (shown once, never stored)."""
    ceiling = highest_scope(user)
    if scope not in SCOPE_ROLE:
        raise TokenError(f"Unknown scope {scope!r}: use read, operate or admin.")
    if ceiling is None or SCOPE_ORDER.index(scope) > SCOPE_ORDER.index(ceiling):
        raise TokenError(
            f"{user.get_username()} cannot mint a {scope} token: a token's scope is at most "
            f"its user's own role ({ceiling or 'none'})."
        )
    expires_in = expires_in or timedelta(days=settings.API_TOKEN_DAYS)
    if expires_in > timedelta(days=settings.API_TOKEN_MAX_DAYS):
        raise TokenError(f"A token lives at most {settings.API_TOKEN_MAX_DAYS} days.")
    key, secret = ApiToken.new_secret()
    token = ApiToken(
        user=user,
        name=(name or "token").strip()[:100],
        key=key,
        digest=digest_of(secret),
        scope=scope,
        selector=selector.strip(),
        expires_at=timezone.now() + expires_in,
    )
    try:
        token.full_clean()
    except ValidationError as e:
        raise TokenError(" ".join(m for ms in e.message_dict.values() for m in ms)) from None
    token.save()
    audit.record(
        audit.Action.TOKEN,
        "minted API token",
        user=user,
        target=str(token),
        detail=f"scope {scope}, expires {token.expires_at:%Y-%m-%d}"
        + (f", machines tagged {token.selector}" if token.selector else ""),
    )
    return token, secret


def revoke(token: ApiToken) -> bool:
    done = bool(
        ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now())
    )
    if done:
        # Who revoked it: the page's user, or the command line's OS user.
        owner = token.user.get_username()
        audit.record(audit.Action.TOKEN, "revoked API token", target=f"{token} of {owner}")
    return done


def revoke_all(user) -> int:
    count = ApiToken.objects.filter(user=user, revoked_at=None).update(revoked_at=timezone.now())
    audit.record(audit.Action.TOKEN, f"revoked all {count} API tokens", target=user.get_username())
    return count


def authenticate(secret: str, address: str | None) -> ApiToken:
    """The live token behind this secret, or TokenError saying why not."""
    match = TOKEN_RE.match(secret or "")
    token = ApiToken.objects.select_related("user").filter(key=match[1]).first() if match else None
    if token is None or not token.matches(secret):
        raise TokenError("This API token is not valid: mint one on the API tokens page.")
    if token.revoked_at:
        raise TokenError("This API token was revoked: mint a new one on the API tokens page.")
    if token.expires_at <= timezone.now():
        raise TokenError("This API token has expired: mint a new one on the API tokens page.")
    if not token.user.is_active:
        raise TokenError("The user of this API token is disabled.")
    now = timezone.now()
    # Written at most once a minute: a busy script would otherwise write on every call.
    if (
        token.last_used_at is None
        or now - token.last_used_at > timedelta(minutes=1)
        or (token.last_used_address != address)
    ):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_address=address)
        token.last_used_at, token.last_used_address = now, address
    return token


def allows(token: ApiToken | None, user, perm: str) -> bool:
    """The user has the permission, and the token's scope (if any) reaches it."""
    if not user.has_perm(perm):
        return False
    return token is None or perm in roles.ROLE_PERMISSIONS[SCOPE_ROLE[token.scope]]


def visible_machines(token: ApiToken | None, machines: QuerySet | None = None) -> QuerySet:
    """The machines a token sees: all, or those its tag selector names."""
    machines = Machine.objects.all() if machines is None else machines
    if token is None or not (pair := token.selector_pair):
        return machines
    key, value, exact = pair
    from machines.services.listing import tag_q

    return machines.filter(tag_q(key, value if exact else None))


def rate_limited(token: ApiToken) -> int:
    """0 when this request may go on, else the seconds until the token's next minute."""
    limit = settings.API_RATE_LIMIT
    if limit <= 0:
        return 0
    window = int(time.time() // 60)
    key = f"api-rate:{token.key}:{window}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=120)
        count = 1
    if count <= limit:
        return 0
    return max(1, math.ceil((window + 1) * 60 - time.time()))
