"""API tokens: minted on the page or with `manage.py api_token`, shown once and stored hashed,
a scope never above the user's role, an optional tag selector, always an expiry; refused
when expired or revoked; rate-limited; every write audited with the token that made it."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from machines.models import ApiToken, AuditEntry, Driver, Machine, Operation
from machines.services import tokens

pytestmark = pytest.mark.django_db


def _machine(name: str, **tags: str) -> Machine:
    generic = Driver.objects.get_or_create(name="generic", defaults={"kind": "generic"})[0]
    return Machine.objects.create(
        name=name, driver=generic, ip="192.0.2.30", tags=tags, state=Machine.State.RUNNING
    )


def _api(secret: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_a_token_is_shown_once_and_stored_hashed(operator):
    token, secret = tokens.mint(operator, "laptop", "operate")
    assert secret.startswith("ddt_") and secret not in str(
        ApiToken.objects.filter(pk=token.pk).values().get()
    )
    assert token.expires_at - timezone.now() > timedelta(days=89)
    response = _api(secret).get("/api/v1/machines")
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_address == "127.0.0.1"


def test_no_or_a_wrong_token_is_401_in_one_sentence(db):
    response = Client().get("/api/v1/machines")
    assert response.status_code == 401
    assert response.json() == {"detail": "Send an API token: Authorization: Bearer <token>."}
    response = _api("ddt_000000000000_" + "x" * 43).get("/api/v1/machines")
    assert response.status_code == 401
    assert "not valid" in response.json()["detail"]


def test_a_viewer_cannot_mint_an_operate_token(viewer):
    with pytest.raises(tokens.TokenError, match="at most its user's own role \\(read\\)"):
        tokens.mint(viewer, "x", "operate")
    client = Client()
    client.force_login(viewer)
    page = client.post(
        reverse("machines:api_tokens"), {"name": "x", "scope": "operate", "expires": "30d"}
    )
    assert page.status_code == 400
    assert "cannot mint a operate token" in page.content.decode()
    assert not ApiToken.objects.exists()
    # A read token is theirs to make, shown once on the page.
    page = client.post(
        reverse("machines:api_tokens"), {"name": "x", "scope": "read", "expires": "30d"}
    )
    assert page.status_code == 200
    secret = page.context["secret"]
    assert secret in page.content.decode()
    assert secret not in client.get(reverse("machines:api_tokens")).content.decode()


def test_a_read_token_cannot_act(operator):
    _machine("web-1")
    _, secret = tokens.mint(operator, "ro", "read")
    response = _api(secret).post("/api/v1/machines/web-1/actions/restart")
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "Only operators and admins act on machines: this token or its user is read-only."
    )
    assert not Operation.objects.exists()


def test_a_selector_token_neither_lists_nor_acts_outside_it(operator):
    _machine("prod-1", env="prod")
    _machine("dev-1", env="dev")
    _, secret = tokens.mint(operator, "prod", "operate", selector="env=prod")
    api = _api(secret)
    names = [m["name"] for m in api.get("/api/v1/machines").json()["results"]]
    assert names == ["prod-1"]
    assert api.get("/api/v1/machines/dev-1").status_code == 404
    response = api.post("/api/v1/machines/dev-1/actions/restart")
    assert response.status_code == 404
    assert response.json() == {"detail": "Host does not exist: 'dev-1'."}
    assert not Operation.objects.filter(machine_name="dev-1").exists()
    response = api.post("/api/v1/machines/prod-1/actions/restart")
    assert response.status_code == 202, response.content
    op = Operation.objects.get(machine_name="prod-1")
    assert op.requested_via == "api"
    # Audited with the token that made it.
    entry = AuditEntry.objects.get(operation=op)
    assert entry.api_token_id is not None and entry.via == "api"
    assert entry.username == "operator"
    # A second request while the first is pending: busy, 409, the pages' words.
    again = api.post("/api/v1/machines/prod-1/actions/restart")
    assert again.status_code == 409
    assert "prod-1 is busy" in again.json()["detail"]


def test_expired_and_revoked_tokens_are_refused(operator):
    token, secret = tokens.mint(operator, "old", "read")
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _api(secret).get("/api/v1/machines")
    assert response.status_code == 401
    assert response.json()["detail"] == (
        "This API token has expired: mint a new one on the API tokens page."
    )
    token, secret = tokens.mint(operator, "gone", "read")
    assert _api(secret).get("/api/v1/machines").status_code == 200
    assert tokens.revoke_all(operator) == 2
    response = _api(secret).get("/api/v1/machines")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_the_rate_limit_answers_429_with_retry_after(operator, settings):
    settings.API_RATE_LIMIT = 3
    _, secret = tokens.mint(operator, "busy", "read")
    api = _api(secret)
    codes = [api.get("/api/v1/machines").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api.get("/api/v1/machines")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["detail"] == "Too many requests with this token: wait and retry."


def test_the_management_command_creates_lists_and_revokes(admin_user):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "api_token", "create", "--user", "admin", "--scope", "admin", "--expires", "30d",
        "--selector", "env=prod", stdout=out, stderr=err,
    )  # fmt: skip
    secret = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert token.matches(secret) and token.selector == "env=prod"
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    out = io.StringIO()
    call_command("api_token", "list", stdout=out)
    assert token.key in out.getvalue() and "active" in out.getvalue()
    call_command("api_token", "revoke", token.key, stdout=io.StringIO())
    minted, revoked = AuditEntry.objects.filter(action="token").order_by("at", "id")
    assert (minted.what, minted.username) == ("minted API token", "admin")
    assert "scope admin" in minted.detail and "env=prod" in minted.detail
    assert (revoked.what, revoked.via) == ("revoked API token", "cli")
    assert _api(secret).get("/api/v1/machines").status_code == 401
    with pytest.raises(CommandError, match="is not a duration"):
        call_command("api_token", "create", "--user", "admin", "--expires", "forever")


def test_list_filters_and_pages_as_the_list_page(operator):
    for i in range(5):
        _machine(f"web-{i}", env="prod" if i % 2 else "dev")
    _, secret = tokens.mint(operator, "ro", "read")
    api = _api(secret)
    body = api.get("/api/v1/machines", {"tag": "env=prod", "per_page": 1, "page": 2}).json()
    assert (body["count"], body["pages"], body["page"]) == (2, 2, 2)
    assert body["results"][0]["name"] == "web-3"
    response = api.get("/api/v1/machines", {"tag": "x;y"})
    assert response.status_code == 422
    assert "is not a tag" in response.json()["detail"]
