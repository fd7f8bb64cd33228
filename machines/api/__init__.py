"""The REST API under /api/v1/ (django-ninja): tokens in machines/api/tokens.py, the checks
in auth.py, the resources in machines.py (machines, operations) and engine.py (containers,
images, volumes, networks, certificates, audit). Every call into dockerdash goes through
calls.py, the same functions the pages and the command line use."""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as SchemaError

from machines.api import calls
from machines.api.auth import TokenAuth, TokenThrottle
from machines.validation import one_line

log = logging.getLogger(__name__)

api = NinjaAPI(
    title="dockerdash API",
    version="1",
    description="Machines, operations, containers and engine objects of a dockerdash "
    "dashboard. Authenticate with `Authorization: Bearer <token>` (mint one on the API "
    "tokens page or with `manage.py api_token create`).",
    auth=TokenAuth(),
    throttle=[TokenThrottle()],
    urls_namespace="api",
    # The docs page and the document itself: for logged-in users of the pages.
    docs_decorator=login_required,
)


def _error(request: HttpRequest, status: int, detail: str):
    return api.create_response(request, {"detail": detail}, status=status)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    return _error(request, exc.status_code, str(exc.message))


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _error(request, 401, "Send an API token: Authorization: Bearer <token>.")


@api.exception_handler(Throttled)
def _throttled(request, exc):
    return _error(request, 429, "Too many requests with this token: wait and retry.")


def _schema_sentence(exc: SchemaError) -> str:
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "the request"
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON."
    return f"{where}: {first.get('msg', 'invalid')}."


@api.exception_handler(SchemaError)
def _invalid(request, exc: SchemaError):
    return _error(request, 422, _schema_sentence(exc))


@api.exception_handler(ValidationError)
def _model_invalid(request, exc: ValidationError):
    return _error(request, 422, one_line(exc))


@api.exception_handler(calls.OperationConflict)
def _busy(request, exc):
    return _error(request, 409, str(exc))


@api.exception_handler(calls.InvalidInput)
def _bad_input(request, exc):
    return _error(request, 422, str(exc))


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc):
    return _error(request, 403, str(exc) or "This token or its user may not do this.")


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error(request, 404, str(exc) or "Not found.")


@api.exception_handler(Exception)
def _server_error(request, exc):
    # Never a traceback to the client; the log keeps it.
    log.exception("API %s %s failed", request.method, request.path)
    return _error(request, 500, "The server failed on this request; its log says why.")


def _register() -> None:
    from machines.api import engine, machines

    api.add_router("", machines.router)
    api.add_router("", engine.router)


_register()
