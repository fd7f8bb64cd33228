from __future__ import annotations

from django.urls import path

from machines.web import alerts as alert_views
from machines.web import audit as audit_views
from machines.web import clusters as cluster_views
from machines.web import engine as engine_views
from machines.web import fleet as fleet_views
from machines.web import machines as views
from machines.web import providers as provider_views
from machines.web import teams as team_views
from machines.web import terminal as terminal_views
from machines.web import tokens as token_views
from machines.web import webhooks as webhook_views

app_name = "machines"
urlpatterns = [
    path("alerts/", alert_views.alert_history, name="alerts"),
    path("alerts/<int:pk>/acknowledge/", alert_views.acknowledge, name="alert_acknowledge"),
    path("alerts/rules/", alert_views.rules, name="alert_rules"),
    path("alerts/rules/<int:pk>/", alert_views.rule_edit, name="alert_rule_edit"),
    path("alerts/rules/<int:pk>/silence/", alert_views.rule_silence, name="alert_rule_silence"),
    path("alerts/channels/", alert_views.channel_add, name="alert_channel_add"),
    path(
        "alerts/channels/<int:pk>/remove/", alert_views.channel_remove, name="alert_channel_remove"
    ),
    path("alerts/channels/<int:pk>/test/", alert_views.channel_test, name="alert_channel_test"),
    path("machines/<str:name>/history/", alert_views.chart, name="machine_chart"),
    path("", views.machine_list, name="list"),
    path("containers/", views.fleet, name="fleet"),
    path("machines/new/", views.machine_create, name="create"),
    path("bulk/", fleet_views.bulk_request, name="bulk_request"),
    path("bulk/<int:pk>/", fleet_views.bulk_detail, name="bulk"),
    path("machines/new/driver-fields/", views.driver_fields, name="driver_fields"),
    path("client-certificates/", views.client_certificates, name="client_certificates"),
    path(
        "client-certificates/revoke/",
        views.revoke_client_certificates,
        name="revoke_client_certificates",
    ),
    path("client-certificates/rotate/", views.rotate_client_ca, name="rotate_client_ca"),
    path("providers/", provider_views.providers, name="providers"),
    path("providers/fields/", provider_views.provider_fields, name="provider_fields"),
    path("providers/<int:pk>/test/", provider_views.provider_test, name="provider_test"),
    path("providers/<int:pk>/remove/", provider_views.provider_remove, name="provider_remove"),
    path("machines/<str:name>/", views.machine_detail, name="detail"),
    path("machines/<str:name>/remove/", views.machine_remove, name="remove"),
    path("machines/<str:name>/tags/", fleet_views.machine_tags, name="tags"),
    path("machines/<str:name>/retry-create/", fleet_views.retry_create, name="retry_create"),
    path("machines/<str:name>/client-bundle.zip", views.client_bundle, name="client_bundle"),
    path("machines/<str:name>/client-cert/", views.client_cert, name="client_cert"),
    path(
        "machines/<str:name>/containers/<str:container_id>/logs/",
        views.container_logs,
        name="container_logs",
    ),
    path(
        "machines/<str:name>/containers/<str:container_id>/terminal/",
        terminal_views.container_terminal,
        name="container_terminal",
    ),
    path(
        "machines/<str:name>/containers/<str:container_id>/<str:action>/",
        views.container_action,
        name="container_action",
    ),
    path(
        "machines/<str:name>/containers/<str:container_id>/",
        terminal_views.container_panel,
        name="container_panel",
    ),
    path("machines/<str:name>/shell/", terminal_views.host_shell, name="host_shell"),
    path("machines/<str:name>/engine/", engine_views.engine_page, name="engine"),
    path(
        "machines/<str:name>/engine/<str:action>/",
        engine_views.engine_action,
        name="engine_action",
    ),
    path("api-tokens/", token_views.api_tokens, name="api_tokens"),
    path("api-tokens/<int:pk>/revoke/", token_views.revoke_api_token, name="revoke_api_token"),
    path("api-tokens/revoke-all/", token_views.revoke_all_api_tokens, name="revoke_all_api_tokens"),
    path("teams/", team_views.team_list, name="teams"),
    path("teams/preview/", team_views.group_preview, name="group_preview"),
    path("webhooks/", webhook_views.webhooks, name="webhooks"),
    path("webhooks/<int:pk>/enable/", webhook_views.enable_webhook, name="enable_webhook"),
    path("webhooks/<int:pk>/remove/", webhook_views.remove_webhook, name="remove_webhook"),
    path("clusters/", cluster_views.cluster_list, name="clusters"),
    path("clusters/<str:name>/", cluster_views.cluster_detail, name="cluster"),
    path("clusters/<str:name>/stacks/new/", cluster_views.stack_new, name="stack_new"),
    path("clusters/<str:name>/stacks/<str:stack>/", cluster_views.stack_detail, name="stack"),
    path(
        "clusters/<str:name>/stacks/<str:stack>/<str:action>/",
        cluster_views.stack_action,
        name="stack_action",
    ),
    path("clusters/<str:name>/<str:action>/", cluster_views.cluster_action, name="cluster_action"),
    path("hooks/stacks/<int:pk>/<str:key>/", cluster_views.stack_webhook, name="stack_webhook"),
    path("audit/", audit_views.audit_log, name="audit"),
    path("audit/export.csv", audit_views.audit_export, name="audit_export"),
    path("machines/<str:name>/<str:action>/", views.machine_action, name="action"),
    path("operations/<int:pk>/cancel/", views.operation_cancel, name="operation_cancel"),
]
