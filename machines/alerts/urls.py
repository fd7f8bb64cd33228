from __future__ import annotations

from django.urls import path

from . import consumers, views

# Included in machines/urls.py (app "machines") and machines/routing.py.
urlpatterns = [
    path("alerts/", views.alert_history, name="alerts"),
    path("alerts/<int:pk>/acknowledge/", views.acknowledge, name="alert_acknowledge"),
    path("alerts/rules/", views.rules, name="alert_rules"),
    path("alerts/rules/<int:pk>/", views.rule_edit, name="alert_rule_edit"),
    path("alerts/rules/<int:pk>/silence/", views.rule_silence, name="alert_rule_silence"),
    path("alerts/channels/", views.channel_add, name="alert_channel_add"),
    path("alerts/channels/<int:pk>/remove/", views.channel_remove, name="alert_channel_remove"),
    path("alerts/channels/<int:pk>/test/", views.channel_test, name="alert_channel_test"),
    path("machines/<str:name>/history/", views.chart, name="machine_chart"),
]

websocket_urlpatterns = [
    path("ws/alerts/", consumers.AlertsConsumer.as_asgi()),
    path("ws/machines/<int:machine_id>/metrics/", consumers.MetricsConsumer.as_asgi()),
]
