from __future__ import annotations

from django.urls import path

from . import views

app_name = "machines"
urlpatterns = [
    path("", views.machine_list, name="list"),
    path("containers/", views.fleet, name="fleet"),
    path("machines/new/", views.machine_create, name="create"),
    path("machines/new/driver-fields/", views.driver_fields, name="driver_fields"),
    path("client-certificates/", views.client_certificates, name="client_certificates"),
    path(
        "client-certificates/revoke/",
        views.revoke_client_certificates,
        name="revoke_client_certificates",
    ),
    path("client-certificates/rotate/", views.rotate_client_ca, name="rotate_client_ca"),
    path("providers/", views.providers, name="providers"),
    path("providers/fields/", views.provider_fields, name="provider_fields"),
    path("providers/<int:pk>/test/", views.provider_test, name="provider_test"),
    path("providers/<int:pk>/remove/", views.provider_remove, name="provider_remove"),
    path("machines/<str:name>/", views.machine_detail, name="detail"),
    path("machines/<str:name>/remove/", views.machine_remove, name="remove"),
    path("machines/<str:name>/client-bundle.zip", views.client_bundle, name="client_bundle"),
    path("machines/<str:name>/client-cert/", views.client_cert, name="client_cert"),
    path(
        "machines/<str:name>/containers/<str:container_id>/logs/",
        views.container_logs,
        name="container_logs",
    ),
    path(
        "machines/<str:name>/containers/<str:container_id>/<str:action>/",
        views.container_action,
        name="container_action",
    ),
    path("machines/<str:name>/<str:action>/", views.machine_action, name="action"),
    path("operations/<int:pk>/cancel/", views.operation_cancel, name="operation_cancel"),
]
