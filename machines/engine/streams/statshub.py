"""Which containers' stats this process streams, and who sees them.

Sockets of this process (a machine's container table, a container's panel) watch running
containers; the hub keeps one StatsStream per container however many sockets watch it, and
none when nobody does (after LINGER seconds, so that a page reload keeps its sparklines).
Every PUSH_EVERY seconds it renders each container that has a new sample, once, and hands
that to the sockets watching it. Nothing here goes through the channel layer: the streams
are this process's own, and so are the sockets that see them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Protocol

from django.template.loader import render_to_string

from machines.engine.streams.stats import Sample, StatsStream

log = logging.getLogger(__name__)

PUSH_EVERY = 2.0
LINGER = 5.0
SPARK_POINTS = 60


class Watcher(Protocol):
    async def stats_changed(self, hub: StatsHub, keys: list[tuple[int, str]]) -> None: ...


@dataclass(eq=False)
class Watched:
    row: int  # the Container's pk: the id of its elements on the pages
    name: str
    stream: StatsStream
    watchers: set = field(default_factory=set)
    sent: int = 0
    idle_since: float | None = None
    rendered: dict = field(default_factory=dict)


def sparkline(values: list[float], top: float) -> str:
    """SVG polyline points for at most SPARK_POINTS values, 60 x 16, newest on the right."""
    if not values:
        return ""
    step = max(1, -(-len(values) // SPARK_POINTS))
    groups = [values[i : i + step] for i in range(0, len(values), step)]
    points = [sum(g) / len(g) for g in groups]
    top = max(top, max(points), 1e-9)
    x0 = SPARK_POINTS - len(points)
    return " ".join(
        f"{x0 + i},{16 - min(v / top, 1) * 15:.1f}" for i, v in enumerate(points, start=1)
    )


def summary(samples: list[Sample]) -> dict:
    """What the templates show of a container's history."""
    last = samples[-1]
    cpus = [s.cpu for s in samples if s.cpu is not None]
    rates = {"rx": 0.0, "tx": 0.0}
    if len(samples) > 1:
        before = samples[-2]
        seconds = max(last.at - before.at, 1e-3)
        rates = {
            "rx": max(last.net_rx - before.net_rx, 0) / seconds,
            "tx": max(last.net_tx - before.net_tx, 0) / seconds,
        }
    mems = [s.mem for s in samples]
    return {
        "last": last,
        "cpu": last.cpu if last.cpu is not None else (cpus[-1] if cpus else None),
        "cpu_spark": sparkline(cpus, 100.0),
        "mem_spark": sparkline(mems, max(mems) * 1.1),
        "rates": rates,
    }


class StatsHub:
    def __init__(self) -> None:
        self.watched: dict[tuple[int, str], Watched] = {}
        self.task: asyncio.Task | None = None

    def watch(self, watcher: Watcher, container) -> tuple[int, str]:
        key = (container.machine_id, container.container_id)
        entry = self.watched.get(key)
        if entry is None:
            stream = StatsStream(container.machine, container.container_id)
            entry = self.watched[key] = Watched(container.pk, container.name, stream)
            stream.start()
        elif not entry.stream.is_alive():  # it stopped and started again
            entry.stream = StatsStream(container.machine, container.container_id)
            entry.sent, entry.rendered = 0, {}
            entry.stream.start()
        entry.watchers.add(watcher)
        entry.idle_since = None
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        return key

    def unwatch(self, watcher: Watcher, key: tuple[int, str]) -> None:
        entry = self.watched.get(key)
        if entry is not None:
            entry.watchers.discard(watcher)
            if not entry.watchers:
                entry.idle_since = time.monotonic()

    def streams(self) -> int:
        return sum(1 for e in self.watched.values() if e.stream.is_alive())

    def render(self, key: tuple[int, str], part: str) -> str | None:
        """The part ("cell" in a table, "panel" for a container's panel) as of now, or None
        while there is no sample yet."""
        entry = self.watched.get(key)
        if entry is None:
            return None
        alive = entry.stream.is_alive()
        version = (entry.stream.version, alive)
        cached = entry.rendered.get(part)
        if cached and cached[0] == version:
            return cached[1]
        samples = entry.stream.samples()
        problem = entry.stream.problem if alive else ""
        if not samples and alive and not problem:
            return None
        context = {"row": entry.row, "name": entry.name, "oob": True, "problem": problem}
        if samples and alive and not problem:
            context.update(summary(samples))
        html = render_to_string(f"machines/stats.html#stats_{part}", context)
        entry.rendered[part] = (version, html)
        return html

    async def _run(self) -> None:
        while self.watched:
            await asyncio.sleep(PUSH_EVERY)
            try:
                await self._tick()
            except Exception:
                log.exception("Pushing container stats failed")

    async def _tick(self) -> None:
        now = time.monotonic()
        changed: dict[Watcher, list[tuple[int, str]]] = {}
        ended = []
        for key, entry in list(self.watched.items()):
            alive = entry.stream.is_alive()
            if not entry.watchers:
                if not alive or now - (entry.idle_since or now) >= LINGER:
                    entry.stream.stop()
                    del self.watched[key]
                continue
            if alive and entry.stream.version == entry.sent:
                continue
            entry.sent = entry.stream.version
            for watcher in entry.watchers:
                changed.setdefault(watcher, []).append(key)
            if not alive:  # the container stopped: its cells are cleared, then it is gone
                ended.append(key)
        # One message per socket and tick, however many of its containers changed.
        for watcher, keys in changed.items():
            try:
                await watcher.stats_changed(self, keys)
            except Exception:
                log.exception("Sending stats failed")
        for key in ended:
            self.watched.pop(key, None)

    def stop_all(self) -> None:
        for entry in self.watched.values():
            entry.stream.stop()
        self.watched.clear()


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stats_hub() -> StatsHub:
    """This process's hub (one per event loop: tests run several)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = StatsHub()
    return _hubs[loop]
