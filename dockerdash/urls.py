from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

# Only the account pages the dashboard uses: no password reset (it would send mail, and
# answers anyone), no password change outside the admin's own.
urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("machines.api.urls", namespace="api")),
    path("", include("machines.web.urls")),
]
