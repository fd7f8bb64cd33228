"""`make bench` (section "history"): the size of 30 days of downsampled history of 1,000
machines in SQLite, and the server time of one machine's 30-day chart."""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime

MACHINES = 1000
DAYS = 30


def _packs(count: int, container: str = "") -> list[bytes]:
    """Some days of plausible, varying samples (the size does not depend on the values)."""
    from machines.alerts import metrics

    rng = random.Random(25)
    packs = []
    for _ in range(count):
        cpu = [max(0.0, min(100.0, 20 + rng.gauss(0, 10))) for _ in range(metrics.SLOTS)]
        columns = {
            "cpu": cpu,
            "memory": [40 + rng.random() * 20 for _ in cpu],
            "disk": [55 + rng.random() for _ in cpu],
            "load": [rng.random() * 2 for _ in cpu],
            "reachable": [1.0 if rng.random() > 0.01 else 0.0 for _ in cpu],
        }
        packs.append(metrics.pack(columns, container))
    return packs


def _fill(machines: list[int], now: datetime) -> None:
    from machines.alerts import metrics
    from machines.models.alerts import MetricBlock, MetricRollup

    packs = _packs(20)
    blocks = []
    for resolution in metrics.RESOLUTIONS:
        span = resolution * metrics.SLOTS
        end = int(now.timestamp())
        first = metrics.block_start(end - DAYS * 86400, resolution)
        for start in range(first, end, span):
            at = datetime.fromtimestamp(start, tz=UTC)
            for i, machine_id in enumerate(machines):
                blocks.append(
                    MetricBlock(
                        machine_id=machine_id,
                        resolution=resolution,
                        start=at,
                        data=packs[(i + start // span) % len(packs)],
                    )
                )
            if len(blocks) > 20000:
                MetricBlock.objects.bulk_create(blocks, batch_size=2000)
                blocks = []
    MetricBlock.objects.bulk_create(blocks, batch_size=2000)
    for resolution in metrics.RESOLUTIONS:
        done = datetime.fromtimestamp(int(now.timestamp()) // resolution * resolution, tz=UTC)
        MetricRollup.objects.update_or_create(resolution=resolution, defaults={"done_until": done})


def _history_bytes() -> tuple[int, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        try:
            cursor.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'machines_metric%' "
                "OR name LIKE 'sqlite_autoindex_machines_metric%' OR name LIKE 'machines_me_%'"
            )
            return cursor.fetchone()[0] or 0, "dbstat: tables and indexes"
        except Exception:
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return pages * cursor.fetchone()[0], "the whole database file"


def bench_history() -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from machines.models import Driver, Machine
    from machines.models.alerts import MetricBlock, MetricSample

    print(f"\n== history: {MACHINES} machines x {DAYS} days (SQLite) ==")
    Machine.objects.filter(name__startswith="hist-").delete()
    MetricBlock.objects.all().delete()
    MetricSample.objects.all().delete()
    driver = Driver.objects.get(name="none")
    Machine.objects.bulk_create(
        Machine(name=f"hist-{i:04d}", driver=driver, engine_url="tcp://192.0.2.1:2376")
        for i in range(MACHINES)
    )
    machines = list(
        Machine.objects.filter(name__startswith="hist-").order_by("pk").values_list("pk", flat=True)
    )
    now = timezone.now()
    started = time.monotonic()
    _fill(machines, now)
    size, how = _history_bytes()
    blocks = MetricBlock.objects.count()
    print(
        f"5-minute and hourly means: {blocks} blocks, written in "
        f"{time.monotonic() - started:.1f} s, "
        f"{size / 2**20:.1f} MiB ({how}; goal <= 200 MB)"
    )
    user, _ = get_user_model().objects.get_or_create(username="bench-history", is_superuser=True)
    client = Client()
    client.force_login(user)
    url = "/machines/hist-0500/history/?range=30d"
    timings = []
    for _ in range(20):
        t0 = time.perf_counter()
        response = client.get(url, HTTP_HOST="localhost")
        timings.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.status_code
    points = response.content.count(b",") // 6
    print(
        f"one machine's 30-day chart (view + template, in-process): median "
        f"{statistics.median(timings[1:]):.1f} ms, max {max(timings[1:]):.1f} ms "
        f"(the first, templates not yet loaded: {timings[0]:.0f} ms), ~{points} points, "
        f"{len(response.content) // 1024} KB (goal <= 100 ms)"
    )
    Machine.objects.filter(name__startswith="hist-").delete()
