"""An API token on a websocket handshake (`dockerdash ssh` from a laptop): the API's checks,
in the API's words. dockerdash.wsorigin lets a Bearer handshake through only on the routes
that take one and only without cookies; the consumer then calls `check` before anything else,
so the token's expiry, revocation, scope (a ceiling on its user's own role), tag selector and
rate limit hold as they do for a REST call."""

from __future__ import annotations

from machines.audit import log as audit
from machines.services import tokens

NOT_ADMIN = "Only admins open a root shell on a host: this token or its user is not admin."
NO_MACHINE = "This machine does not exist (or this token does not reach it)."


def secret_of(scope) -> str | None:
    """The token of an `Authorization: Bearer` handshake, else None (a browser's socket)."""
    for key, value in scope.get("headers", ()):
        if key.lower() == b"authorization":
            scheme, _, secret = value.decode("latin1").partition(" ")
            return secret.strip() if scheme == "Bearer" else ""
    return None


def check(consumer, secret: str, address: str | None) -> str:
    """ "" with the token's user in the consumer's scope, or why the socket is refused."""
    try:
        token = tokens.authenticate(secret, address)
    except tokens.TokenError as e:
        return str(e)
    consumer.api_token = token
    # Whose rights find the route's machine (sockets/base.route_machine: teams, roles).
    consumer.user = token.user
    if not reaches(consumer, token, token.user):
        machine = consumer.machine
        if machine is None or not tokens.visible_machines(token).filter(pk=machine.pk).exists():
            return NO_MACHINE
        if not tokens.allows(token, token.user, consumer.permission):
            return NOT_ADMIN
        return f"{machine.name} has no host shell: its driver does not manage the host."
    if wait := tokens.rate_limited(token):
        return f"Too many requests with this API token: try again in {wait} s."
    consumer.scope["user"] = token.user
    return ""


def reaches(consumer, token, user) -> bool:
    """The token (and its user) may open this consumer's socket on this machine."""
    if not (consumer.object_exists() and tokens.allows(token, user, consumer.permission)):
        return False
    return tokens.visible_machines(token).filter(pk=consumer.machine.pk).exists()


def refused(scope, token, reason: str, address: str | None) -> None:
    who = token.user if token is not None else None
    what = f"refused socket {scope.get('path', '')}"[:200]
    audit.record_refusal(what, user=who, address=address, detail=f"API token: {reason}")
