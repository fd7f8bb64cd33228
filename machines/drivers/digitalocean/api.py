"""DigitalOcean's API through pydo, its official client: one call, its answer or a Failure.

pydo returns some error answers as if they were results (a droplet that is gone comes back
as the body of its 404), so every call asks pydo for the raw status as well and decides
here. pydo's own retries are off: the shared ones (cloud/api.py) apply, with their bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pydo
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline.policies import SansIOHTTPPolicy

from machines.drivers.cloud import Failure, ProviderFailure

OK = (200, 201, 202, 204)
PER_PAGE = 200  # the API's maximum


class BearerToken(SansIOHTTPPolicy):
    """The token as a bearer header. azure-core's own policy refuses plain http even to
    127.0.0.1, which a local endpoint (a proxy, the tests' fake) needs; the account form
    allows http for loopback addresses only."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def on_request(self, request) -> None:
        request.http_request.headers["Authorization"] = f"Bearer {self._token}"


def client(token: str, api_url: str) -> pydo.Client:
    return pydo.Client(
        token,
        endpoint=api_url,
        authentication_policy=BearerToken(token),
        retry_total=0,
        connection_timeout=10,
        read_timeout=60,
    )


def _raw(pipeline_response, body, headers):
    response = pipeline_response.http_response
    return response.status_code, body, response.headers


def _retry_after(headers) -> float | None:
    if seconds := headers.get("retry-after"):
        try:
            return max(0.0, float(seconds))
        except ValueError:
            return None
    if reset := headers.get("ratelimit-reset"):
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


def failure_from(status: int, body, headers) -> Failure:
    body = body if isinstance(body, dict) else {}
    return Failure(
        status,
        str(body.get("id") or "error"),
        str(body.get("message") or ""),
        _retry_after(headers or {}),
    )


def failure_of(error: BaseException, api_url: str) -> Failure | None:
    if isinstance(error, HttpResponseError) and error.status_code:
        response = error.response
        try:
            body = response.json() if response is not None else {}
        except ValueError:
            body = {"message": (response.text() if response is not None else "")[:200]}
        headers = response.headers if response is not None else {}
        return failure_from(error.status_code, body, headers)
    if isinstance(error, AzureError):  # nothing answered: refused, reset, timed out
        reason = str(error).split("\n")[0][:200]
        return Failure(None, "unreachable", f"{api_url}: {reason}")
    return None


def answer(fn: Callable, *args, **kwargs) -> dict:
    """The body of a successful answer, else ProviderFailure (a 404 included)."""
    status, body, headers = fn(*args, cls=_raw, **kwargs)
    if status not in OK:
        raise ProviderFailure(failure_from(status, body, headers))
    return body or {}


def next_page(body: dict, page: int) -> int | None:
    """The page the answer's links point to next (links.pages.next), if any."""
    link = ((body.get("links") or {}).get("pages") or {}).get("next")
    if not link:
        return None
    try:
        following = int(parse_qs(urlsplit(link).query)["page"][0])
    except (KeyError, ValueError, IndexError):
        return None
    return following if following > page else None
