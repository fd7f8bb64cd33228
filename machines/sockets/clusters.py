"""The cluster and stack pages' socket: nodes, or a stack's services and tasks, read from a
manager when the swarm changes (its engines' events: nodes, services, task containers) and
at least every REFRESH seconds, sent when they differ from what the page shows."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async

from machines import live
from machines.engine.streams.logs import LOG_TAIL, LineQueue
from machines.engine.streams.servicelogs import ServiceLogFollower
from machines.lib.errors import DriverError
from machines.models import Cluster, Stack
from machines.operations.swarmsteps import reachable_manager
from machines.services import clusters, rights, stacks
from machines.sockets.base import LiveConsumer
from machines.sockets.machines import ContainerLogConsumer

# Swarm notices a node gone after its heartbeats stop; this bounds how stale a page can be
# when an event is missed (an engine whose watcher is reconnecting).
REFRESH = 5.0
# Events come in bursts (a deploy starts many tasks): one read after a short pause.
DEBOUNCE = 0.3


class ClusterConsumer(LiveConsumer):
    def object_exists(self) -> bool:
        # Clusters span machines of any team: global roles only (as on the pages).
        if not rights.sees_all(self.user):
            return False
        kwargs = self.scope["url_route"]["kwargs"]
        self.cluster = Cluster.objects.filter(pk=kwargs["cluster_id"]).first()
        stack_id = kwargs.get("stack_id")
        self.stack = Stack.objects.filter(pk=stack_id).first() if stack_id else None
        return self.cluster is not None and (stack_id is None or self.stack is not None)

    def groups_for(self) -> list[str]:
        self.last = ""
        self.dirty = asyncio.Event()
        self.refresher = asyncio.create_task(self._refresh_loop())
        return [live.cluster_group(self.cluster.pk)]

    def snapshot(self) -> list[str]:
        self.last = self.fragment()
        return [self.last]

    def fragment(self) -> str:
        ctx = {"cluster": self.cluster, "stack": self.stack, "oob": True, "error": ""}
        try:
            if self.stack is None:
                ctx["nodes"] = clusters.nodes(self.cluster)
            else:
                ctx["services"] = stacks.state(self.stack)["services"]
        except (DriverError, OSError) as e:
            ctx["error"] = str(e)
        template = (
            "clusters/cluster.html#nodes" if self.stack is None else "clusters/stack.html#services"
        )
        return self.render(template, ctx)

    async def cluster_changed(self, event: dict) -> None:
        self.dirty.set()

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.dirty.wait(), REFRESH)
                await asyncio.sleep(DEBOUNCE)
            except TimeoutError:
                pass
            self.dirty.clear()
            html = await database_sync_to_async(self.fragment)()
            if html != self.last:
                self.last = html
                await self.send(text_data=html)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "refresher", None):
            self.refresher.cancel()
        await super().disconnect(code)


class ServiceLogConsumer(ContainerLogConsumer):
    """A stack's service's log, through a manager (operators: logs can hold secrets)."""

    def object_exists(self) -> bool:
        if not rights.sees_all(self.user):
            return False
        kwargs = self.scope["url_route"]["kwargs"]
        self.stack = Stack.objects.select_related("cluster").filter(pk=kwargs["stack_id"]).first()
        self.service = kwargs["service"]
        return self.stack is not None and self.service.startswith(f"{self.stack.name}_")

    def make_follower(self, queue: LineQueue) -> ServiceLogFollower:
        cluster = self.stack.cluster
        return ServiceLogFollower(lambda: reachable_manager(cluster), self.service, LOG_TAIL, queue)
