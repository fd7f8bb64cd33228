from __future__ import annotations

from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/machines/", consumers.MachineListConsumer.as_asgi()),
    path("ws/machines/<int:machine_id>/", consumers.MachineConsumer.as_asgi()),
    path("ws/operations/<int:operation_id>/", consumers.OperationConsumer.as_asgi()),
]
