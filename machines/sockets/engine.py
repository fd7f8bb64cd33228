"""Sockets for what happens inside an engine: live stats of the running containers a page
shows (the machine's container table, a container's panel), and the images, volumes and
networks page.

Stats come from this process's StatsHub (containers/statshub.py), one stream per container
however many sockets watch it; the rest comes through the live groups like every page.
"""

from __future__ import annotations

from channels.db import database_sync_to_async

from machines import live
from machines.engine.streams.statshub import stats_hub
from machines.models import Container, EngineObject
from machines.sockets.machines import LiveConsumer, MachineContainersConsumer

# A table streams the stats of at most this many of its running rows (a filter narrows it).
STATS_PER_TABLE = 100


def _running(machine_id: int, rows: list[int]) -> list[Container]:
    return list(
        Container.objects.select_related("machine__driver").filter(
            machine_id=machine_id, pk__in=rows, state="running"
        )
    )


class LiveContainersConsumer(MachineContainersConsumer):
    """A machine's container table, with the CPU and memory of the running rows it shows."""

    async def connect(self) -> None:
        self.stats_keys: dict[str, tuple[int, str]] = {}
        await super().connect()
        if self.keepalive_task is None:
            return
        rows = [int(row.removeprefix("container-")) for row in self.rows_shown]
        running = await database_sync_to_async(_running)(self.machine.pk, rows)
        for container in running[:STATS_PER_TABLE]:
            self.stats_keys[f"container-{container.pk}"] = stats_hub().watch(self, container)

    async def disconnect(self, code: int) -> None:
        for key in getattr(self, "stats_keys", {}).values():
            stats_hub().unwatch(self, key)
        await super().disconnect(code)

    async def containers_changed(self, event: dict) -> None:
        await self._forward_row(event)
        row = event["row"]
        running = row in self.rows_shown and event.get("fields", {}).get("state") == "running"
        key = self.stats_keys.get(row)
        if running and key is None and len(self.stats_keys) < STATS_PER_TABLE:
            found = await database_sync_to_async(_running)(
                self.machine.pk, [int(row.removeprefix("container-"))]
            )
            if found:
                self.stats_keys[row] = stats_hub().watch(self, found[0])
        elif running:
            # The row was replaced (its cell with it): put the latest stats back at once.
            if html := stats_hub().render(key, "cell"):
                await self.send(text_data=html)
        elif key is not None:
            stats_hub().unwatch(self, self.stats_keys.pop(row))

    async def stats_changed(self, hub, keys: list[tuple[int, str]]) -> None:
        cells = [html for key in keys if (html := hub.render(key, "cell"))]
        if cells:
            await self.send(text_data="".join(cells))


class ContainerStatsConsumer(LiveConsumer):
    """A container's panel: its stats while it runs (and again when it starts again)."""

    def object_exists(self) -> bool:
        self.container = self.route_container()
        return self.container is not None

    def groups_for(self) -> list[str]:
        return [live.containers_group(self.container.machine_id)]

    def snapshot(self) -> list[str]:
        return []

    async def connect(self) -> None:
        self.key = None
        await super().connect()
        if self.keepalive_task is not None and self.container.state == "running":
            self.key = stats_hub().watch(self, self.container)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "key", None) is not None:
            stats_hub().unwatch(self, self.key)
        await super().disconnect(code)

    async def containers_changed(self, event: dict) -> None:
        if event["row"] != f"container-{self.container.pk}" or event.get("deleted"):
            return
        if event.get("fields", {}).get("state") == "running" and self.key is None:
            self.key = stats_hub().watch(self, self.container)

    async def stats_changed(self, hub, keys: list[tuple[int, str]]) -> None:
        if self.key is None:
            return
        html = hub.render(self.key, "panel")
        if not self.container_alive(hub):
            hub.unwatch(self, self.key)
            self.key = None
        if html:
            await self.send(text_data=html)

    def container_alive(self, hub) -> bool:
        entry = hub.watched.get(self.key)
        return entry is not None and entry.stream.is_alive()

    async def containers_notice(self, event: dict) -> None:
        return None  # the table's socket shows those


class EngineObjectsConsumer(LiveConsumer):
    """A machine's images, volumes and networks, and the image pulls in progress there."""

    def object_exists(self) -> bool:
        self.machine = self.route_machine()
        return self.machine is not None

    def groups_for(self) -> list[str]:
        return [live.engine_group(self.machine.pk)]

    def snapshot(self) -> list[str]:
        # Pulls in progress: each is inserted the first time this socket hears of it.
        self.rows_shown: set[str] = set()
        objects = EngineObject.objects.filter(machine=self.machine)
        return [
            self.render(
                "machines/engine.html#tables_oob",
                {"machine": self.machine, **live.engine_tables(objects)},
            )
        ]

    engine_changed = LiveConsumer._forward
    engine_pull = LiveConsumer._forward_row
    engine_notice = LiveConsumer._forward
