"""The OpenAPI document: valid OpenAPI 3 (openapi-spec-validator), served to logged-in users
with its docs page on vendored assets, and the whole API fuzzed from it with schemathesis:
no server error, no response that breaks the document."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks

from machines.api import api
from machines.models import Driver, Machine
from machines.services import tokens

pytestmark = pytest.mark.django_db


def _document() -> dict:
    return json.loads(json.dumps(api.get_openapi_schema(), default=str))


def test_the_document_is_valid_openapi_3():
    document = _document()
    validate(document)
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in ("/api/v1/machines", "/api/v1/operations/{pk}/log", "/api/v1/containers"):
        assert path in paths
    assert document["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"


def test_the_document_and_docs_page_are_for_logged_in_users(viewer):
    anonymous = Client()
    assert anonymous.get("/api/v1/openapi.json").status_code == 302
    client = Client()
    client.force_login(viewer)
    assert client.get("/api/v1/openapi.json").json()["info"]["title"] == "dockerdash API"
    page = client.get("/api/v1/docs").content.decode()
    # Vendored Swagger UI, no CDN.
    assert "/static/ninja/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()


CHECKS = [
    not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
fuzzed = schemathesis.openapi.from_dict(_document())
fuzzed.app = WSGIHandler()


@pytest.fixture
def bearer(admin_user) -> dict:
    # A machine whose engine answers nothing at once (no socket there): engine calls fail
    # in words instead of waiting.
    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    Machine.objects.create(
        name="web-1",
        driver=none,
        engine_url="unix:///nonexistent/docker.sock",
        state=Machine.State.RUNNING,
        tags={"env": "prod"},
    )
    _, secret = tokens.mint(admin_user, "fuzz", "admin")
    return {"Authorization": f"Bearer {secret}"}


@fuzzed.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_survives_fuzzing(case, bearer, settings_rate):
    response = case.call(headers=bearer)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    # The token is ours (valid) and sent on every case: the auth-guessing checks do not apply.
    case.validate_response(response, checks=CHECKS)


@pytest.fixture
def settings_rate(settings):
    settings.API_RATE_LIMIT = 0
    settings.ALLOWED_HOSTS = ["*"]
    # As Django's test client: the test's database connection stays open between requests.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)
