"""/api/v1/: the API authenticates each request by its Bearer token, so the pages' login
redirect (LoginRequiredMiddleware) does not apply; the docs page and the OpenAPI document
ask for a logged-in user themselves (docs_decorator)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

from . import api


def _exempt(patterns: list) -> list:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            _exempt(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            pattern.callback.login_required = False
    return patterns


patterns, app_name, namespace = api.urls
urlpatterns = _exempt(list(patterns))
