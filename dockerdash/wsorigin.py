"""Websockets from the dashboard's own pages only.

A browser sends the session cookie with a websocket from any page: only the Origin header
tells the dashboard's pages from another site's (or another port's: http://localhost:3000
is another origin than http://localhost:8000). The rule is Django's CSRF origin check for a
POST: the Origin must equal the dashboard's own origin (the scheme of the connection and
the Host the browser connected to, which must be one of ALLOWED_HOSTS) or be one of
CSRF_TRUSTED_ORIGINS. A socket without an Origin is refused: every browser sends one.

One exception, for `dockerdash ssh` from a laptop: a handshake with `Authorization: Bearer`
on a host shell's route and no cookies. A page cannot set that header on a websocket (the
browser's API has no way to), and without cookies no session rides along, so the origin check
has nothing to protect there; the consumer checks the token as the API does. Bearer anywhere
else, or with cookies, is refused.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin1")
    return None


def _scheme(scope) -> str:
    # Behind a TLS proxy (SECURE_PROXY_SSL_HEADER) the proxy says which scheme the browser
    # used, as for HTTP requests; daphne itself only speaks plain ws.
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        header, secure_value = proxy
        name = header.removeprefix("HTTP_").replace("_", "-").lower().encode()
        value = _header(scope, name)
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") == "wss" else "http"


def _trusted(origin: str) -> bool:
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in trusted:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, urlsplit(pattern).netloc.lstrip("*"))
        for pattern in trusted
        if "*" in pattern and urlsplit(pattern).scheme == parsed.scheme
    )


def origin_allowed(scope) -> bool:
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    if not origin or not host:
        return False
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    return origin == f"{_scheme(scope)}://{host}" or _trusted(origin)


# The sockets that take an API token (machines.sockets.terminal.HostShellConsumer).
TOKEN_ROUTES = re.compile(r"\A/ws/machines/\d+/shell/\Z")


def bearer_allowed(scope) -> bool:
    """A token handshake on a route that takes one, with no cookie (so no session)."""
    authorization = _header(scope, b"authorization") or ""
    return (
        authorization.startswith("Bearer ")
        and _header(scope, b"cookie") is None
        and bool(TOKEN_ROUTES.match(scope.get("path", "")))
    )


class SameOriginValidator:
    """ASGI middleware: refuses a websocket whose Origin is not the dashboard's own (or,
    with a token, one that bearer_allowed refuses)."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            token = _header(scope, b"authorization") is not None
            if not (bearer_allowed(scope) if token else origin_allowed(scope)):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
