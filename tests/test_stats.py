"""Live container stats: the numbers (as `docker stats` computes them, on cgroup v1 and v2),
and the streams (one per container per process however many sockets watch it, none when
nobody does)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading

import pytest
from asgiref.sync import sync_to_async

from machines.engine import clients
from machines.engine.streams import statshub
from machines.engine.streams.stats import NO_FIGURES, compute

from .inside import SHELL_IMAGE, shell_image_tar, store_container
from .private_engine import private_dockerd
from .sockets import connect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.engine]

UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def _cli_memory(engine_url: str, name: str) -> float:
    """The memory `docker stats` (the real docker CLI) shows for a container, in bytes."""
    out = subprocess.run(
        ["docker", "-H", engine_url, "stats", "--no-stream", "--format", "{{.MemUsage}}", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    value, unit = re.match(r"([\d.]+)([KMG]?i?B)", out).groups()
    return float(value) * UNITS[unit]


def test_memory_is_the_usage_less_the_page_cache_as_docker_stats_shows_it(
    engine_container, engine_url, parent
):
    # 30 MiB written to a file: page cache, which `docker stats` leaves out.
    _, container = engine_container("dd if=/dev/zero of=/tmp/x bs=1M count=30; sleep 600")
    stream = parent.api.stats(container.id, stream=True, decode=True)
    next(stream)
    document = next(stream)  # the second has the previous CPU reading too
    stream.close()
    sample = compute(document)
    assert sample.mem < 16 * 1024**2 < document["memory_stats"]["usage"]
    assert abs(sample.mem - _cli_memory(engine_url, container.name)) < 512 * 1024
    assert sample.mem_limit > 0 and sample.cpu is not None and sample.pids >= 1


def test_cgroup_v2_documents_give_the_same_numbers():
    """An engine on cgroup v2 names the cache inactive_file and its I/O ops in lower case."""
    document = {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000_000},
            "system_cpu_usage": 20_000_000_000,
            "online_cpus": 4,
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": 1_000_000_000},
            "system_cpu_usage": 16_000_000_000,
        },
        "memory_stats": {
            "usage": 100 * 1024**2,
            "limit": 1024**3,
            "stats": {"inactive_file": 40 * 1024**2, "anon": 50 * 1024**2, "file": 45 * 1024**2},
        },
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "read", "value": 4096},
                {"major": 8, "minor": 0, "op": "write", "value": 8192},
            ]
        },
        "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 20}, "eth1": {"rx_bytes": 1}},
        "pids_stats": {"current": 3},
    }
    sample = compute(document)
    # (3e9 - 1e9) / (20e9 - 16e9) x 4 CPUs = 200 %: two CPUs' worth.
    assert sample.cpu == pytest.approx(200.0)
    assert sample.mem == 60 * 1024**2 and sample.mem_percent == pytest.approx(60 / 1024 * 100)
    assert (sample.net_rx, sample.net_tx, sample.blk_read, sample.blk_write) == (11, 20, 4096, 8192)
    # cgroup v1 spells it total_inactive_file, and "Read"/"Write".
    document["memory_stats"]["stats"] = {"total_inactive_file": 30 * 1024**2, "cache": 99}
    for entry in document["blkio_stats"]["io_service_bytes_recursive"]:
        entry["op"] = entry["op"].title()
    sample = compute(document)
    assert sample.mem == 70 * 1024**2 and (sample.blk_read, sample.blk_write) == (4096, 8192)
    # A stopped container's document is all empty.
    assert compute({"memory_stats": {}, "cpu_stats": {"cpu_usage": {"total_usage": 0}}}) is None


CPU = re.compile(r'class="cpu"[^>]*>([\d.]+) %')


async def _cpu_cell(socket, row_id: int) -> str:
    """The next stats cell of a row that has a CPU figure (the first sample has none)."""
    while True:
        html = await socket.receive_from(timeout=20)
        if f'id="cstats-{row_id}"' in html and CPU.search(html):
            return html


def _streams(container_id: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name == f"stats-{container_id[:12]}")


async def _wait(predicate, timeout: float = 20) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_one_stream_per_container_however_many_watch_and_none_after(
    engine_container, viewer, operator, monkeypatch
):
    monkeypatch.setattr(statshub, "PUSH_EVERY", 0.2)
    monkeypatch.setattr(statshub, "LINGER", 0.2)
    row, _container = await sync_to_async(engine_container)("while :; do :; done")
    table = f"/ws/machines/{row.machine_id}/containers/"
    panel = f"/ws/machines/{row.machine_id}/containers/{row.container_id}/stats/"
    sockets = [await connect(u, table) for u in (viewer, operator, viewer)]
    sockets.append(await connect(operator, panel))
    for socket in sockets[:3]:
        await socket.receive_from()  # the table's snapshot
    await _wait(lambda: _streams(row.container_id) == 1)

    # Each table gets the row's cell, with the CPU it burns; the panel all of it.
    cells = [await _cpu_cell(socket, row.pk) for socket in sockets[:3]]
    assert float(CPU.search(cells[0]).group(1)) > 5 and "<polyline points=" in cells[0]
    html = await sockets[3].receive_from(timeout=20)
    assert f'id="cpanel-stats-{row.pk}"' in html and "Block I/O" in html
    assert _streams(row.container_id) == 1

    # Changing, live: the next pushes carry new samples.
    assert await _cpu_cell(sockets[0], row.pk) != cells[0]

    for socket in sockets:
        await socket.disconnect()
    await _wait(lambda: _streams(row.container_id) == 0)
    assert statshub.stats_hub().streams() == 0


async def test_a_container_that_stops_clears_its_stats(engine_container, operator, monkeypatch):
    monkeypatch.setattr(statshub, "PUSH_EVERY", 0.2)
    row, container = await sync_to_async(engine_container)()
    panel = await connect(
        operator, f"/ws/machines/{row.machine_id}/containers/{row.container_id}/stats/"
    )
    while "Processes" not in await panel.receive_from(timeout=20):
        pass
    await sync_to_async(container.kill)()
    while "Not running: no stats." not in await panel.receive_from(timeout=20):
        pass
    await _wait(lambda: _streams(row.container_id) == 0)
    await panel.disconnect()


async def test_an_engine_without_figures_says_so_in_words(operator, tmp_path, monkeypatch):
    # A real engine on a host that lacks the perf_event cgroup hierarchy, as on a fresh
    # machine here: it streams empty documents for a running container.
    monkeypatch.setattr(statshub, "PUSH_EVERY", 0.2)
    with private_dockerd(tmp_path, unmounted=("perf_event",)) as engine:
        row, container = await sync_to_async(_shell_container_on)(engine.url)
        panel = await connect(
            operator, f"/ws/machines/{row.machine_id}/containers/{row.container_id}/stats/"
        )
        pushed = [""]
        try:
            async with asyncio.timeout(60):
                while NO_FIGURES not in pushed[-1]:
                    pushed.append(await panel.receive_from(timeout=30))
        except TimeoutError:
            pytest.fail(f"no words about the missing figures; the panel said: {pushed[-3:]}")
        assert "Processes" not in pushed[-1] and "None" not in pushed[-1]
        assert not any("Processes" in html for html in pushed), "figures from that engine?"
        await panel.disconnect()
        await sync_to_async(container.remove)(force=True)


def _shell_container_on(engine_url: str):
    client = clients.client(engine_url, timeout=60)
    repository, tag = SHELL_IMAGE.split(":")
    client.api.import_image_from_data(shell_image_tar(), repository=repository, tag=tag)
    running = client.containers.run(
        SHELL_IMAGE, ["/bin/sleep", "600"], detach=True, environment={"PATH": "/bin"}
    )
    return store_container(engine_url, running), running
