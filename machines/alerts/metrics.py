"""Metrics history: raw samples for a day, then 5-minute and hourly means packed in blocks.

A block is SLOTS means of one machine (or container) at one resolution, each metric as
SLOTS unsigned 16-bit numbers (value x its scale; MISSING where nothing was sampled): a
machine's day of 5-minute means is about 3 KB, so 1,000 machines x 30 days stays under
100 MB of SQLite, and a 30-day chart reads 30 rows. Works the same on PostgreSQL.
"""

from __future__ import annotations

import array
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from machines.models.alerts import MetricBlock, MetricRollup, MetricSample

SLOTS = 288
MISSING = 0xFFFF
METRICS = ("cpu", "memory", "disk", "load", "reachable", "restarts", "healthy")
# Value x scale fits 0..65534: CPU up to 6553 %, load up to 655, container memory in MiB.
SCALE = {"cpu": 10, "memory": 10, "disk": 100, "load": 100, "reachable": 1000, "healthy": 1000}
CONTAINER_SCALE = {**SCALE, "memory": 1, "restarts": 1}
RESOLUTIONS = (300, 3600)


def _scale(container: str) -> dict[str, int]:
    return CONTAINER_SCALE if container else SCALE


def pack(columns: dict[str, list[float | None]], container: str = "") -> bytes:
    """{metric: SLOTS values} as bytes: a mask of the metrics held, then their columns."""
    scale = _scale(container)
    held = [m for m in METRICS if any(v is not None for v in columns.get(m, ()))]
    out = array.array("H", [sum(1 << METRICS.index(m) for m in held)])
    for metric in held:
        factor = scale.get(metric, 1)
        out.extend(
            MISSING if v is None else max(0, min(MISSING - 1, round(v * factor)))
            for v in columns[metric]
        )
    return out.tobytes()


def unpack(data: bytes, container: str = "") -> dict[str, list[float | None]]:
    scale = _scale(container)
    raw = array.array("H")
    raw.frombytes(bytes(data))
    mask, columns = raw[0], {}
    offset = 1
    for i, metric in enumerate(METRICS):
        if mask & (1 << i):
            factor = scale.get(metric, 1)
            chunk = raw[offset : offset + SLOTS]
            columns[metric] = [None if v == MISSING else v / factor for v in chunk]
            offset += SLOTS
    return columns


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def block_start(epoch: int, resolution: int) -> int:
    return epoch - epoch % (resolution * SLOTS)


# -- writing ------------------------------------------------------------------------------


def record(samples: list[MetricSample]) -> None:
    if samples:
        MetricSample.objects.bulk_create(samples, batch_size=500)


def _means(rows) -> dict[tuple, dict[str, float]]:
    """{(machine, container, bucket epoch): {metric: mean}} of (machine, container, epoch,
    {metric: value}) rows already put in buckets."""
    sums: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for machine_id, container, bucket, values in rows:
        for metric, value in values.items():
            if value is not None:
                sums[machine_id, container, bucket][metric].append(value)
    return {key: {m: sum(v) / len(v) for m, v in metrics.items()} for key, metrics in sums.items()}


def _raw_rows(start: datetime, end: datetime, resolution: int):
    query = MetricSample.objects.filter(at__gte=start, at__lt=end).values_list(
        "machine_id", "container", "at", *METRICS
    )
    for machine_id, container, at, *values in query.iterator(chunk_size=2000):
        epoch = _epoch(at)
        yield (
            machine_id,
            container,
            epoch - epoch % resolution,
            dict(zip(METRICS, values, strict=True)),
        )


def _block_rows(start: datetime, end: datetime, source: int, resolution: int):
    """The means of `source` blocks between start and end, put in `resolution` buckets."""
    blocks = MetricBlock.objects.filter(
        resolution=source,
        start__lt=end,
        start__gte=start - timedelta(seconds=source * SLOTS),
    )
    lo, hi = _epoch(start), _epoch(end)
    for block in blocks.iterator(chunk_size=500):
        first = _epoch(block.start)
        for metric, column in unpack(block.data, block.container).items():
            for slot, value in enumerate(column):
                at = first + slot * source
                if value is not None and lo <= at < hi:
                    bucket = at - at % resolution
                    yield block.machine_id, block.container, bucket, {metric: value}


def _merge(means: dict[tuple, dict[str, float]], resolution: int) -> None:
    """Write means into their blocks (read, fill the slots, write back)."""
    by_block: dict[tuple, list] = defaultdict(list)
    for (machine_id, container, bucket), values in means.items():
        by_block[machine_id, container, block_start(bucket, resolution)].append((bucket, values))
    for (machine_id, container, start), points in by_block.items():
        block, _ = MetricBlock.objects.get_or_create(
            machine_id=machine_id,
            container=container,
            resolution=resolution,
            start=_at(start),
            defaults={"data": pack({})},
        )
        columns = unpack(block.data, container)
        for bucket, values in points:
            slot = (bucket - start) // resolution
            for metric, value in values.items():
                columns.setdefault(metric, [None] * SLOTS)[slot] = value
        block.data = pack(columns, container)
        block.save(update_fields=["data"])


def rollup(now: datetime | None = None) -> None:
    """Downsample what became complete since the last rollup: raw -> 5 min -> hourly. One
    runner does each stretch (a conditional UPDATE claims it)."""
    now = now or timezone.now()
    for resolution in RESOLUTIONS:
        source_done = now if resolution == RESOLUTIONS[0] else _done(RESOLUTIONS[0], now)
        until = _at(_epoch(source_done) - _epoch(source_done) % resolution)
        state = _state(resolution, now)
        if until <= state.done_until:
            continue
        start = state.done_until
        with transaction.atomic():
            claimed = MetricRollup.objects.filter(pk=state.pk, done_until=start).update(
                done_until=until
            )
            if not claimed:
                continue
            if resolution == RESOLUTIONS[0]:
                rows = _raw_rows(start, until, resolution)
            else:
                rows = _block_rows(start, until, RESOLUTIONS[0], resolution)
            _merge(_means(rows), resolution)


def _state(resolution: int, now: datetime) -> MetricRollup:
    # The first rollup starts where raw samples still exist.
    first = now - timedelta(hours=settings.METRICS_RAW_HOURS)
    first = _at(_epoch(first) - _epoch(first) % resolution)
    return MetricRollup.objects.get_or_create(
        resolution=resolution, defaults={"done_until": first}
    )[0]


def _done(resolution: int, now: datetime) -> datetime:
    return _state(resolution, now).done_until


def prune(now: datetime | None = None) -> int:
    """Apply the retention: raw DOCKERDASH_METRICS_RAW_HOURS, 5-minute means
    DOCKERDASH_METRICS_5MIN_DAYS, hourly DOCKERDASH_METRICS_HOURLY_DAYS."""
    now = now or timezone.now()
    deleted = MetricSample.objects.filter(
        at__lt=now - timedelta(hours=settings.METRICS_RAW_HOURS)
    ).delete()[0]
    for resolution, days in (
        (300, settings.METRICS_5MIN_DAYS),
        (3600, settings.METRICS_HOURLY_DAYS),
    ):
        # A block goes when its last slot is past the retention.
        cutoff = now - timedelta(days=days) - timedelta(seconds=resolution * SLOTS)
        deleted += MetricBlock.objects.filter(resolution=resolution, start__lt=cutoff).delete()[0]
    return deleted


# -- reading ------------------------------------------------------------------------------

RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


def resolution_for(seconds: int) -> int:
    return 0 if seconds <= 3600 else 300 if seconds <= 7 * 86400 else 3600


def series(machine_id: int, container: str, seconds: int, now: datetime | None = None) -> dict:
    """A chart's data: {"t": [epoch, ...], metric: [value, ...]} for the last `seconds`,
    from the coarsest data the range needs, then finer data after it (up to now)."""
    now = now or timezone.now()
    cursor = now - timedelta(seconds=seconds)
    wanted = resolution_for(seconds)
    points: list[tuple[int, dict]] = []
    for resolution in sorted((r for r in RESOLUTIONS if r <= wanted), reverse=True):
        done = MetricRollup.objects.filter(resolution=resolution).values_list(
            "done_until", flat=True
        )
        done = done.first()
        if done is None or done <= cursor:
            continue
        points += _block_points(machine_id, container, resolution, cursor, done)
        cursor = done
    raw = MetricSample.objects.filter(machine_id=machine_id, container=container, at__gte=cursor)
    for at, *values in raw.order_by("at").values_list("at", *METRICS):
        points.append((_epoch(at), dict(zip(METRICS, values, strict=True))))
    held = [m for m in METRICS if any(v.get(m) is not None for _, v in points)]
    return {"t": [t for t, _ in points], **{m: [v.get(m) for _, v in points] for m in held}}


def _block_points(machine_id, container, resolution, start, end) -> list[tuple[int, dict]]:
    blocks = MetricBlock.objects.filter(
        machine_id=machine_id,
        container=container,
        resolution=resolution,
        start__lt=end,
        start__gte=start - timedelta(seconds=resolution * SLOTS),
    ).order_by("start")
    lo, hi = _epoch(start), _epoch(end)
    points = []
    for first, data in blocks.values_list("start", "data"):
        columns = unpack(data, container)
        first = _epoch(first)
        for slot in range(SLOTS):
            at = first + slot * resolution
            if lo <= at < hi:
                values = {m: column[slot] for m, column in columns.items()}
                if any(v is not None for v in values.values()):
                    points.append((at, values))
    return points
