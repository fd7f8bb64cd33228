from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpResponseForbidden


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Django's login-everywhere middleware, except that an anonymous POST (or any other
    unsafe method, or an htmx request) gets a plain 403 instead of a login redirect that a
    script or htmx would silently follow."""

    def handle_no_permission(self, request, view_func):
        if request.method not in ("GET", "HEAD") or request.headers.get("HX-Request"):
            return HttpResponseForbidden("Log in first.")
        return super().handle_no_permission(request, view_func)
