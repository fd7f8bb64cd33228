"""A running container's resource use, as `docker stats` computes it, from the engine's stats
stream (one JSON document a second).

`compute()` is the docker CLI's arithmetic: CPU % from the change in the container's and the
system's CPU time since the previous document, times the CPUs online; memory is the usage
less the inactive page cache (`total_inactive_file` on cgroup v1, `inactive_file` on v2); net
and block I/O are sums over the interfaces and devices. A StatsStream is the thread reading
one container's stream into a five-minute history (statshub.py decides when one runs).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from dataclasses import dataclass

from machines.engine.streams.base import DockerStream

log = logging.getLogger(__name__)

# Samples kept (one a second): the sparklines' five minutes.
HISTORY = 300

# What a viewer reads when the engine streams empty documents for a container that runs: the
# engine cannot read its cgroups (a host missing cgroup v1 hierarchies logs "cannot find
# cgroup mount destination"), and `docker stats` shows nothing there either.
NO_FIGURES = (
    "The engine gives no figures for this running container (docker stats shows none either):"
    " its host probably lacks a cgroup hierarchy, as the engine log says."
)


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.monotonic() when it arrived
    cpu: float | None  # percent of one CPU, as docker stats (200 % = two CPUs busy)
    mem: int  # bytes, less the inactive page cache
    mem_limit: int
    net_rx: int
    net_tx: int
    blk_read: int
    blk_write: int
    pids: int

    @property
    def mem_percent(self) -> float:
        return self.mem * 100 / self.mem_limit if self.mem_limit else 0.0


def _cpu_percent(doc: dict) -> float | None:
    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    if "system_cpu_usage" not in cpu or "system_cpu_usage" not in pre:
        return None  # the first document of a stream has no previous one
    used = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    system = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    online = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or ()) or 1
    if system <= 0 or used < 0:
        return 0.0
    return used / system * online * 100.0


def memory_used(memory: dict) -> int:
    """Usage less the inactive file cache, as the docker CLI computes it (v1, then v2)."""
    usage = memory.get("usage") or 0
    stats = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in stats and stats[key] < usage:
            return usage - stats[key]
    return usage


def _block_io(doc: dict) -> tuple[int, int]:
    read = write = 0
    for entry in (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or ():
        op = str(entry.get("op", "")).lower()  # "Read" on cgroup v1, "read" on v2
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    return read, write


def compute(doc: dict, at: float | None = None) -> Sample | None:
    """One stats document as numbers; None for a container that is not running."""
    memory = doc.get("memory_stats") or {}
    if not memory and not (doc.get("cpu_stats") or {}).get("system_cpu_usage"):
        return None  # what the engine sends for a stopped container (all empty)
    networks = (doc.get("networks") or {}).values()
    read, write = _block_io(doc)
    return Sample(
        at=time.monotonic() if at is None else at,
        cpu=_cpu_percent(doc),
        mem=memory_used(memory),
        mem_limit=memory.get("limit") or 0,
        net_rx=sum(n.get("rx_bytes", 0) for n in networks),
        net_tx=sum(n.get("tx_bytes", 0) for n in networks),
        blk_read=read,
        blk_write=write,
        pids=(doc.get("pids_stats") or {}).get("current") or 0,
    )


class StatsStream(DockerStream):
    """Reads one container's stats stream into `history` until stopped or it ends."""

    def __init__(self, machine, container_id: str) -> None:
        super().__init__(machine, f"stats-{container_id[:12]}")
        self.container_id = container_id
        self.history: collections.deque[Sample] = collections.deque(maxlen=HISTORY)
        self.lock = threading.Lock()
        self.version = 0  # bumped with each sample (and when `problem` changes)
        self.problem = ""  # in words, while the engine gives no figures for a running container

    def samples(self) -> list[Sample]:
        with self.lock:
            return list(self.history)

    def failed(self, error: Exception) -> None:
        log.info("The stats of %s stopped: %s", self.container_id[:12], error)

    def follow(self) -> None:
        if self.open(self.container_id, "stats", {"stream": 1}, (10, 30)) is None:
            return
        self.response.raise_for_status()
        for line in self.response.iter_lines(chunk_size=None):
            if self.stopping.is_set():
                return
            if not line.strip():
                continue
            sample = compute(json.loads(line))
            if sample is None and not self._running():
                return  # the container stopped
            with self.lock:
                problem = NO_FIGURES if sample is None else ""
                if sample is not None:
                    self.history.append(sample)
                elif problem == self.problem:
                    continue
                self.problem = problem
                self.version += 1

    def _running(self) -> bool:
        """An empty document means "stopped" only when the container is; otherwise the engine
        could not read its figures."""
        try:
            return bool(self.client.api.inspect_container(self.container_id)["State"]["Running"])
        except Exception:
            return False
