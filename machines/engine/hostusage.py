"""A host's CPU, memory and disk use, for its row on the machine list and its page.

Read over SSH, not from the engine: Docker's API tells a host's CPU count and memory size
but not how busy it is, nor how full its disk. One short read-only command (no root needed)
every DOCKERDASH_HOST_USAGE_INTERVAL seconds per provisioned machine, from the health checks;
CPU use is the average since the previous sample (the first one takes a one-second sample).
Engines attached by URL have no SSH connection of ours, and show no host use.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from machines.engine.streams.hostshell import open_pinned
from machines.lib.ssh import SSHError
from machines.models import Machine

log = logging.getLogger(__name__)

COMMAND = (
    "cat /proc/loadavg; head -n1 /proc/stat; {second}"
    "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; "
    "d=/var/lib/docker; [ -d $d ] || d=/; df -Pk $d | tail -n1"
)


def _ticks(line: str) -> tuple[int, int]:
    """(busy, total) jiffies from the `cpu` line of /proc/stat."""
    values = [int(v) for v in line.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def parse(output: str, previous: tuple[int, int] | None) -> dict:
    cpu_lines = [line for line in output.splitlines() if line.startswith("cpu ")]
    meminfo = {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in output.splitlines()
        if line.startswith(("MemTotal:", "MemAvailable:"))
    }
    disk = output.splitlines()[-1].split()
    # /proc/loadavg: "0.12 0.08 0.01 1/123 456" (the 1-minute load, for the history).
    load = next((line.split()[0] for line in output.splitlines() if "/" in line[:40]), None)
    ticks = _ticks(cpu_lines[-1])
    before = _ticks(cpu_lines[0]) if len(cpu_lines) > 1 else previous
    cpu = None
    if before is not None and ticks[1] > before[1]:
        cpu = round((ticks[0] - before[0]) * 100 / (ticks[1] - before[1]), 1)
    total = meminfo.get("MemTotal", 0)
    return {
        "cpu": cpu,
        "ticks": list(ticks),
        "mem_total": total,
        "mem_used": total - meminfo.get("MemAvailable", total),
        "disk_total": int(disk[1]) * 1024,
        "disk_used": int(disk[2]) * 1024,
        "disk_path": disk[5] if len(disk) > 5 else "/",
        "load": float(load) if load and load.replace(".", "", 1).isdigit() else None,
    }


def _due(machine: Machine) -> bool:
    if not (machine.driver_class.provisioned and machine.ssh_host_key):
        return False
    last = (machine.engine_info or {}).get("host", {}).get("at")
    if not last:
        return True
    age = timezone.now() - datetime.fromisoformat(last)
    return age.total_seconds() >= settings.HOST_USAGE_INTERVAL - 1


def sample(machine: Machine, *, force: bool = False) -> bool:
    """Take a sample if one is due; store it. Whether what a viewer sees changed."""
    if not (force or _due(machine)):
        return False
    old = (machine.engine_info or {}).get("host") or {}
    previous = tuple(old["ticks"]) if old.get("ticks") else None
    command = COMMAND.format(second="" if previous else "sleep 1; head -n1 /proc/stat; ")
    try:
        with open_pinned(machine, timeout=settings.HEALTH_CHECK_TIMEOUT + 2) as session:
            status, output = session.run(command, timeout=10)
        if status != 0:
            raise SSHError(output.strip()[-200:])
        usage = parse(output, previous)
    except (SSHError, ValueError, IndexError) as e:
        log.info("Reading the host use of %s failed: %s", machine.name, e)
        return False
    usage["at"] = timezone.now().isoformat()
    info = {**(machine.engine_info or {}), "host": usage}
    Machine.objects.filter(pk=machine.pk).update(engine_info=info)
    machine.engine_info = info
    return _shown(old) != _shown(usage)


def _shown(usage: dict) -> tuple:
    """What the pages show, rounded: only a change there is worth a push."""
    if not usage:
        return ()

    def pct(used: str, total: str) -> int:
        return round(usage.get(used, 0) * 100 / usage[total]) if usage.get(total) else 0

    cpu = usage.get("cpu")
    return (
        None if cpu is None else round(cpu),
        pct("mem_used", "mem_total"),
        pct("disk_used", "disk_total"),
    )
