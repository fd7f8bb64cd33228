from __future__ import annotations

from django.urls import path

from machines.sockets import alerts as alert_consumers
from machines.sockets import clusters as cluster_consumers
from machines.sockets import engine as engine_consumers
from machines.sockets import fleet as fleet_consumers
from machines.sockets import machines as consumers
from machines.sockets import terminal as terminal_consumers

websocket_urlpatterns = [
    path("ws/machines/", fleet_consumers.MachineListConsumer.as_asgi()),
    path("ws/machines/<int:machine_id>/", consumers.MachineConsumer.as_asgi()),
    path(
        "ws/machines/<int:machine_id>/containers/",
        engine_consumers.LiveContainersConsumer.as_asgi(),
    ),
    path(
        "ws/machines/<int:machine_id>/containers/<str:container_id>/logs/",
        consumers.ContainerLogConsumer.as_asgi(),
    ),
    path(
        "ws/machines/<int:machine_id>/containers/<str:container_id>/terminal/",
        terminal_consumers.ContainerTerminalConsumer.as_asgi(),
    ),
    path(
        "ws/machines/<int:machine_id>/containers/<str:container_id>/stats/",
        engine_consumers.ContainerStatsConsumer.as_asgi(),
    ),
    path("ws/machines/<int:machine_id>/shell/", terminal_consumers.HostShellConsumer.as_asgi()),
    path("ws/machines/<int:machine_id>/engine/", engine_consumers.EngineObjectsConsumer.as_asgi()),
    path("ws/containers/", consumers.FleetConsumer.as_asgi()),
    path("ws/bulk/<int:bulk_id>/", fleet_consumers.BulkConsumer.as_asgi()),
    path("ws/operations/<int:operation_id>/", consumers.OperationConsumer.as_asgi()),
    path("ws/alerts/", alert_consumers.AlertsConsumer.as_asgi()),
    path("ws/clusters/<int:cluster_id>/", cluster_consumers.ClusterConsumer.as_asgi()),
    path(
        "ws/clusters/<int:cluster_id>/stacks/<int:stack_id>/",
        cluster_consumers.ClusterConsumer.as_asgi(),
    ),
    path(
        "ws/clusters/<int:cluster_id>/stacks/<int:stack_id>/logs/<str:service>/",
        cluster_consumers.ServiceLogConsumer.as_asgi(),
    ),
    path("ws/machines/<int:machine_id>/metrics/", alert_consumers.MetricsConsumer.as_asgi()),
]
