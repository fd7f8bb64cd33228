from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

# Only the account pages the dashboard uses: no password reset (it would send mail, and
# answers anyone), no password change outside the admin's own.
urlpatterns = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            extra_context={
                "oidc_name": settings.OIDC_NAME if settings.OIDC_ISSUER else "",
                "local_login": settings.LOCAL_LOGIN,
            }
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("machines.api.urls", namespace="api")),
    path("", include("machines.web.urls")),
]

if settings.OIDC_ISSUER:
    # /oidc/authenticate/ sends the browser to the provider, /oidc/callback/ takes it back:
    # both before login, of course.
    from django.contrib.auth.decorators import login_not_required
    from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

    from machines.services.sso import OIDCLoginView

    urlpatterns[2:2] = [
        path(
            "oidc/callback/",
            login_not_required(OIDCAuthenticationCallbackView.as_view()),
            name="oidc_authentication_callback",
        ),
        path(
            "oidc/authenticate/",
            login_not_required(OIDCLoginView.as_view()),
            name="oidc_authentication_init",
        ),
    ]
