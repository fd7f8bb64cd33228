"""/api/v1/: the API authenticates each request by its Bearer token, so the pages' login
redirect (LoginRequiredMiddleware) does not apply, except to the docs page and the OpenAPI
document, which are for logged-in users."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

from machines.api import api

# For people, as the other pages: the login redirect (or a 403 to a POST) stays.
PAGES = ("openapi-json", "openapi-view")


def _exempt(patterns: list) -> list:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            _exempt(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and pattern.name not in PAGES:
            pattern.callback.login_required = False
    return patterns


patterns, app_name, namespace = api.urls
urlpatterns = _exempt(list(patterns))
