"""Websocket consumers: check the user, join a group, send a snapshot, forward changes.

Fragments are rendered in live.py; consumers only choose the rendering the user may see.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from . import live
from .models import Machine, Operation


class _LiveConsumer(AsyncWebsocketConsumer):
    permission = "machines.view_machine"

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not (user and user.is_authenticated):
            await self.close()
            return
        allowed = await database_sync_to_async(self._allowed)(user)
        if not allowed:
            await self.close()
            return
        self.groups_joined = self.groups_for()
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        # Snapshot on every connect: whatever was sent while disconnected is not lost.
        await self.send(text_data=await database_sync_to_async(self.snapshot)())

    def _allowed(self, user) -> bool:
        self.can_operate = user.has_perm("machines.operate_machine")
        return user.has_perm(self.permission) and self.object_exists()

    def object_exists(self) -> bool:
        return True

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # Actions go through POST views (with CSRF and role checks); the socket only listens.
        return None

    def groups_for(self) -> list[str]:
        raise NotImplementedError

    def snapshot(self) -> str:
        raise NotImplementedError

    async def _forward(self, event: dict) -> None:
        html = event.get("html_operator") if self.can_operate else None
        await self.send(text_data=html or event["html"])

    machine_changed = _forward
    operation_changed = _forward
    operation_log = _forward
    containers_changed = _forward


class MachineListConsumer(_LiveConsumer):
    def groups_for(self) -> list[str]:
        return [live.MACHINES]

    def snapshot(self) -> str:
        machines = Machine.objects.select_related("driver").order_by("name")
        return render_to_string(
            "machines/list.html#machine_rows_oob",
            {"machines": machines, "can_operate": self.can_operate},
        )


class MachineConsumer(_LiveConsumer):
    def object_exists(self) -> bool:
        self.machine_id = self.scope["url_route"]["kwargs"]["machine_id"]
        return Machine.objects.filter(pk=self.machine_id).exists()

    def groups_for(self) -> list[str]:
        return [live.machine_group(self.machine_id), live.containers_group(self.machine_id)]

    def snapshot(self) -> str:
        machine = Machine.objects.select_related("driver").get(pk=self.machine_id)
        return render_to_string(
            "machines/detail.html#machine_live_oob",
            {
                "machine": machine,
                "operations": machine.operations.all()[:20],
                "containers": machine.containers.all(),
            },
        )


class OperationConsumer(_LiveConsumer):
    def object_exists(self) -> bool:
        self.operation_id = self.scope["url_route"]["kwargs"]["operation_id"]
        return Operation.objects.filter(pk=self.operation_id).exists()

    def groups_for(self) -> list[str]:
        return [live.operation_group(self.operation_id)]

    def snapshot(self) -> str:
        operation = Operation.objects.get(pk=self.operation_id)
        return render_to_string(
            "machines/detail.html#operation_log_oob",
            {"operation": operation, "lines": operation.log_lines.all()},
        )
