"""Samples for the history, taken at the end of each health cycle from what it just observed:
a machine's reachability and host use (already read by the health check, no extra
connection), and its running containers' CPU, memory, restarts and health (one engine
client per machine, an inspect and a one-shot stats call per container)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from machines import live
from machines.alerts import metrics
from machines.engine import clients
from machines.models import Container, Machine
from machines.models.alerts import MetricSample

log = logging.getLogger(__name__)

# At most this many containers of one machine are sampled per cycle.
CONTAINERS_PER_MACHINE = 100
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="metrics")
# (machine, container id) -> (container CPU ns, system CPU ns) of the previous sample: a
# one-shot stats call has no previous reading of its own.
_previous_cpu: dict[tuple[int, str], tuple[int, int]] = {}
_lock = threading.Lock()


def machine_sample(machine: Machine, now: datetime) -> MetricSample | None:
    if machine.state == Machine.State.NONE:
        return None
    running = machine.state == Machine.State.RUNNING
    sample = MetricSample(
        machine_id=machine.pk, at=now, reachable=1.0 if running and machine.engine_reachable else 0
    )
    host = (machine.engine_info or {}).get("host") or {}
    fresh = host.get("at") and now - datetime.fromisoformat(host["at"]) < timedelta(
        seconds=2 * settings.HOST_USAGE_INTERVAL + settings.HEALTH_CHECK_INTERVAL
    )
    if running and fresh:
        sample.cpu = host.get("cpu")
        sample.load = host.get("load")
        if host.get("mem_total"):
            sample.memory = host["mem_used"] * 100 / host["mem_total"]
        if host.get("disk_total"):
            sample.disk = host["disk_used"] * 100 / host["disk_total"]
    return sample


def _cpu_percent(key: tuple[int, str], stats: dict) -> float | None:
    cpu = stats.get("cpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    system = cpu.get("system_cpu_usage")
    if total is None or system is None:
        return None
    with _lock:
        if len(_previous_cpu) > 50_000:  # containers long gone: start over
            _previous_cpu.clear()
        before = _previous_cpu.get(key)
        _previous_cpu[key] = (total, system)
    if before is None or system <= before[1] or total < before[0]:
        return None
    cpus = cpu.get("online_cpus") or 1
    return (total - before[0]) * 100 * cpus / (system - before[1])


def container_samples(machine: Machine, now: datetime) -> list[MetricSample]:
    rows = list(
        Container.objects.filter(machine=machine, state__in=["running", "restarting"])
        .order_by("name")
        .values_list("container_id", "name")[:CONTAINERS_PER_MACHINE]
    )
    if not rows:
        return []
    samples = []
    client = clients.client_for_machine(machine, timeout=settings.HEALTH_CHECK_TIMEOUT + 2)
    try:
        for container_id, name in rows:
            try:
                state = client.api.inspect_container(container_id)
                stats = {}
                if state["State"].get("Running"):
                    stats = client.api.stats(container_id, stream=False, one_shot=True)
            except Exception as e:
                log.info("Sampling %s on %s failed: %s", name, machine.name, e)
                continue
            health = (state["State"].get("Health") or {}).get("Status")
            memory = (stats.get("memory_stats") or {}).get("usage")
            samples.append(
                MetricSample(
                    machine_id=machine.pk,
                    container=name,
                    at=now,
                    cpu=_cpu_percent((machine.pk, container_id), stats),
                    memory=memory / 2**20 if memory is not None else None,
                    restarts=state.get("RestartCount", 0),
                    healthy={"healthy": 1.0, "unhealthy": 0.0}.get(health),
                )
            )
    finally:
        client.close()
    return samples


def _containers_of(machine: Machine, now: datetime) -> list[MetricSample]:
    try:
        return container_samples(machine, now)
    except Exception as e:
        log.info("Sampling the containers of %s failed: %s", machine.name, e)
        return []
    finally:
        close_old_connections()


def sample(machines: list[Machine]) -> list[MetricSample]:
    """Store one sample per machine and per running container of the reachable ones, and
    push the new points to the charts on screen."""
    now = timezone.now()
    samples = [s for m in machines if (s := machine_sample(m, now)) is not None]
    if settings.METRICS_CONTAINERS:
        reachable = [m for m in machines if m.engine_reachable and m.state == "running"]
        for found in _pool.map(_containers_of, reachable, [now] * len(reachable)):
            samples += found
    metrics.record(samples)
    by_machine: dict[int, list[tuple[str, dict]]] = {}
    for s in samples:
        point = {"t": int(s.at.timestamp()), **{m: getattr(s, m) for m in metrics.METRICS}}
        by_machine.setdefault(s.machine_id, []).append((s.container, point))
    for machine_id, points in by_machine.items():
        live.metrics_sampled(machine_id, points)
    return samples
