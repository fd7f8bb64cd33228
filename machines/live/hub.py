"""The per-process fan-out hub: each group joined once on the channel layer, its changes
handed to this process's sockets in one loop.

Measured to be needed (README, "fan-out to 500 clients"): keep its figures when touching it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Protocol

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


class Member(Protocol):
    """A socket of this process: it gets each change of the groups it joined."""

    async def deliver(self, event: dict) -> None: ...


class LocalGroups:
    """This process's sockets by group, each group joined once on the channel layer.

    With a membership per socket, one change for 500 sockets of a page is 500 messages, and
    the in-memory layer sweeps every channel and membership on each receive (500 x 500):
    about 300 ms on two cores. Joined once per process, a change arrives once and is handed
    to the local sockets in one loop, in order. Layers drop memberships (after a day, or when
    a message waited past its expiry); they are renewed every minute.
    """

    RENEW_EVERY = 60

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.members: dict[str, set[Member]] = {}
        self.lock = asyncio.Lock()
        self.channel = ""
        self.tasks: list[asyncio.Task] = []

    async def join(self, consumer: Member, groups: list[str]) -> None:
        async with self.lock:
            if not self.channel:
                self.channel = await self.layer.new_channel("sockets.")
                # Held here: the loop keeps only weak references to tasks.
                self.tasks = [
                    asyncio.create_task(self._relay()),
                    asyncio.create_task(self._renew()),
                ]
            for group in groups:
                members = self.members.setdefault(group, set())
                if not members:
                    await self.layer.group_add(group, self.channel)
                members.add(consumer)

    async def leave(self, consumer: Member, groups: list[str]) -> None:
        async with self.lock:
            for group in groups:
                members = self.members.get(group, set())
                members.discard(consumer)
                if not members and self.members.pop(group, None) is not None:
                    await self.layer.group_discard(group, self.channel)

    async def _relay(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except Exception:
                log.exception("Receiving live changes failed; retrying")
                await asyncio.sleep(1)
                continue
            for consumer in list(self.members.get(event.get("group"), ())):
                try:
                    await consumer.deliver(event)
                except Exception:
                    log.exception("Forwarding %s failed", event.get("type"))

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.RENEW_EVERY)
            async with self.lock:
                for group in self.members:
                    await self.layer.group_add(group, self.channel)


_local_groups: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def local_groups() -> LocalGroups:
    """The hub of the running event loop (one per process; tests run several loops)."""
    loop = asyncio.get_running_loop()
    if loop not in _local_groups:
        _local_groups[loop] = LocalGroups()
    return _local_groups[loop]
