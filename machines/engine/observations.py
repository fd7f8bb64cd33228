"""One writer for what health checks and watchers observe: a machine's row is written only
when something on it changed, in batches, from one thread.

A thousand failing engines used to mean a thousand threads each writing "unreachable" on
every retry. Here an observation that repeats what is stored costs no write; the freshness
of a confirmed state (`last_checked`, `last_seen`: pages say "as of ..." when it grows old)
is renewed for all confirmed machines at once, in one UPDATE per batch, and only once it is
older than a health-check interval.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from machines import live
from machines.models import Machine

log = logging.getLogger(__name__)

# What pages show: a change to one of these is written and published at once.
VISIBLE = ("state", "engine_reachable", "docker_version", "last_error", "ip")
# The library's text behind an error: written with a visible change, never alone (its
# wording varies between attempts that fail alike).
CARRIED = ("last_error_detail",)
# When the state was last confirmed: renewed in bulk, when due.
FRESHNESS = ("last_checked", "last_seen")
KNOWN = (*VISIBLE, *CARRIED, *FRESHNESS)
BATCH_WAIT = 0.2
CHUNK = 500


class ObservationWriter(threading.Thread):
    """Collects observations (`submit`, from any thread) and stores what changed."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="observations")
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.known: dict[int, dict] = {}
        self.written_at: dict[int, float] = {}
        self.stopping = threading.Event()
        self.idle = threading.Event()

    def submit(
        self, machine_id: int, changes: dict, stored: dict | None = None, read_at: float = 0
    ) -> None:
        """Observed `changes` of one machine; `stored` is its row as read at `read_at`
        (time.monotonic(), taken before the read), if known."""
        self.idle.clear()
        self.queue.put((machine_id, changes, stored, read_at))

    def stop(self, timeout: float = 2) -> None:
        self.stopping.set()
        self.queue.put(None)
        self.join(timeout)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                batch = self._collect()
                if batch:
                    try:
                        self.flush(batch)
                    except Exception:
                        log.exception("Storing %d observations failed", len(batch))
                        self.known.clear()  # read them again next time
                if self.queue.empty():
                    self.idle.set()
        finally:
            close_old_connections()

    def _collect(self) -> dict[int, dict]:
        """What arrived within BATCH_WAIT of the first item, merged per machine: a steady
        trickle of retries must not hold a batch open."""
        try:
            item = self.queue.get(timeout=1)
        except queue.Empty:
            return {}
        batch: dict[int, dict] = {}
        until = time.monotonic() + BATCH_WAIT
        while item is not None:
            machine_id, changes, stored, read_at = item
            # A row read before our last write to it is older than what we know.
            if stored is not None and self.written_at.get(machine_id, -1) < read_at:
                self.known[machine_id] = {k: stored[k] for k in KNOWN if k in stored}
            batch[machine_id] = {**batch.get(machine_id, {}), **changes}
            left = until - time.monotonic()
            if left <= 0:
                break
            try:
                item = self.queue.get(timeout=left)
            except queue.Empty:
                break
        return batch

    def flush(self, batch: dict[int, dict]) -> None:
        missing = [pk for pk in batch if pk not in self.known]
        for row in Machine.objects.filter(pk__in=missing).values("pk", *KNOWN):
            self.known[row.pop("pk")] = row
        changed, confirmed, seen = [], [], []
        now = timezone.now()
        due = now - timedelta(seconds=settings.HEALTH_CHECK_INTERVAL)
        with transaction.atomic():
            for pk, changes in batch.items():
                known = self.known.get(pk)
                if known is None:
                    continue  # removed meanwhile
                news = {k: v for k, v in changes.items() if k in VISIBLE and known.get(k) != v}
                if news:
                    news.update({k: v for k, v in changes.items() if k not in VISIBLE})
                    Machine.objects.filter(pk=pk).update(**news)
                    known.update(news)
                    self.written_at[pk] = time.monotonic()
                    changed.append(pk)
                    continue
                if "last_checked" in changes and _older(known.get("last_checked"), due):
                    confirmed.append(pk)
                    known["last_checked"] = now
                if "last_seen" in changes and _older(known.get("last_seen"), due):
                    seen.append(pk)
                    known["last_seen"] = now
            _renew(confirmed, last_checked=now)
            _renew(seen, last_seen=now)
        for machine in Machine.objects.select_related("driver").filter(pk__in=changed):
            live.machine_changed(machine)

    def forget(self, machine_id: int) -> None:
        self.known.pop(machine_id, None)


def _older(when, due) -> bool:
    return when is None or when < due


def _renew(pks: list[int], **fields) -> None:
    for start in range(0, len(pks), CHUNK):
        Machine.objects.filter(pk__in=pks[start : start + CHUNK]).update(**fields)
