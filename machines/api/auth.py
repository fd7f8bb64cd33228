"""Bearer authentication, the per-token rate limit, and the checks every endpoint shares:
the token's scope as a ceiling on the user's rights, and the machines its selector lets it
see (a machine outside it is "not found", as it would be to a stranger)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle

from dockerdash.throttle import client_address
from machines.models import ApiToken, Machine
from machines.services import rights, tokens

# What each right is called in a refusal (the pages' words).
REFUSALS = {
    "machines.view_machine": "This token cannot see machines.",
    "machines.operate_machine": "Only operators and admins act on machines: this token or "
    "its user is read-only.",
    "machines.add_machine": "Only admins create machines: this token or its user is not admin.",
    "machines.delete_machine": "Only admins remove machines: this token or its user is not admin.",
    "machines.view_auditentry": "Only admins read the audit log: this token or its user is "
    "not admin.",
}


class TokenAuth(HttpBearer):
    def __call__(self, request: HttpRequest):
        if not request.headers.get("Authorization"):
            raise HttpError(401, "Send an API token: Authorization: Bearer <token>.")
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:
        try:
            found = tokens.authenticate(token, client_address(request))
        except tokens.TokenError as e:
            raise HttpError(401, str(e)) from None
        # Who acts, for the views' rights and for the audit log (which names the token).
        request.user = found.user
        request.api_token = found
        return found


class TokenThrottle(BaseThrottle):
    """DOCKERDASH_API_RATE_LIMIT requests a minute per token; then 429 with Retry-After."""

    def allow_request(self, request: HttpRequest) -> bool:
        token = getattr(request, "api_token", None)
        self._wait = tokens.rate_limited(token) if token is not None else 0
        return not self._wait

    def wait(self) -> float:
        return float(self._wait)


def need(request: HttpRequest, perm: str) -> None:
    """The token and its user hold `perm` (on some machine); `get_machine` then checks it on
    the machine the request names."""
    if not tokens.allows(getattr(request, "api_token", None), request.user, perm):
        raise HttpError(403, REFUSALS.get(perm, "This token or its user may not do this."))
    request.api_needed = perm


def visible(request: HttpRequest, machines=None):
    """The machines the token's selector names, of those its user may see (teams)."""
    machines = tokens.visible_machines(getattr(request, "api_token", None), machines)
    return rights.visible_machines(request.user, machines)


def get_machine(request: HttpRequest, name: str) -> Machine:
    machine = visible(request, Machine.objects.select_related("driver")).filter(name=name).first()
    if machine is None:
        raise HttpError(404, f"Host does not exist: {name!r}.")
    perm = getattr(request, "api_needed", rights.VIEW)
    if not rights.allowed_on(request.user, machine, perm):
        raise HttpError(403, REFUSALS.get(perm, "This token or its user may not do this."))
    return machine
