"""`make bench`: the figures the issues ask for, measured on this machine.

Run as `python -m tests.bench [SECTION ...]` with the test engine's DOCKER_HOST exported
(the Makefile does both). It uses a database of its own under var/bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(os.getenv("DOCKERDASH_BENCH_DIR", ROOT / "var" / "bench"))


def setup_django() -> None:
    os.environ["DOCKERDASH_DATA_DIR"] = str(BENCH_DIR)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockerdash.settings")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _env() -> dict[str, str]:
    return {**os.environ, "DOCKERDASH_DATA_DIR": str(BENCH_DIR)}


def _reset_machines() -> None:
    from machines.models import Machine, Operation

    Operation.objects.all().delete()
    Machine.objects.all().delete()


def _fill(total: int, unreachable: int, hole_address: str) -> None:
    """`total` machines as stored after health checks; `unreachable` of them black-holed."""
    from django.utils import timezone

    from machines.models import Driver, Machine

    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    now = timezone.now()
    Machine.objects.bulk_create(
        Machine(
            name=f"m-{i:04d}",
            driver=none,
            engine_url=hole_address if i < unreachable else f"tcp://192.0.2.{i % 250}:2376",
            state=Machine.State.RUNNING,
            docker_version="28.2.2",
            last_seen=None if i < unreachable else now,
            engine_reachable=i >= unreachable,
            last_error="Engine unreachable: timed out" if i < unreachable else "",
        )
        for i in range(total)
    )


def _time_cli(*args: str, runs: int = 5) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "manage.py", "machine", *args],
            cwd=ROOT,
            env=_env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return times


def bench_ls() -> None:
    """machine ls for 50 and 1,000 machines, with and without unreachable ones.

    docker-machine asks every host and waits its 10 s timeout when one does not answer;
    dockerdash reads stored state. Measured while a health check of the black-holed hosts
    is in progress, as it would be under a running runner.
    """
    import threading

    from machines.models import Machine
    from machines.operations import runner
    from tests.bench_cli import _cli
    from tests.helpers import BlackHole

    with tempfile.TemporaryDirectory() as tmp:
        hole = BlackHole(os.path.join(tmp, "hole.sock"))
        print("\n== machine ls (stored state; whole command including Python start-up) ==")
        print(
            f"{'machines':>9} {'black-holed':>12} {'median s':>9} {'max s':>7} {'CPU s':>6}  "
            "in-process median s"
        )
        for total, unreachable in [(50, 0), (50, 5), (1000, 0), (1000, 100)]:
            _reset_machines()
            _fill(total, unreachable, hole.address)
            checks = [
                threading.Thread(target=runner.check_machine, args=(m,), kwargs={"timeout": 10})
                for m in Machine.objects.filter(engine_url=hole.address)[:unreachable]
            ]
            for t in checks:
                t.start()
            times = _time_cli("ls")
            cpu = statistics.median(_cli("ls")[1] for _ in range(3))
            inproc = _time_inprocess_ls()
            print(
                f"{total:>9} {unreachable:>12} {statistics.median(times):>9.3f} "
                f"{max(times):>7.3f} {cpu:>6.3f}  {statistics.median(inproc):.3f}"
            )
            for t in checks:
                t.join()
        hole.close()
    _reset_machines()


def _time_inprocess_ls(runs: int = 5) -> list[float]:
    from io import StringIO

    from django.core.management import call_command

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call_command("machine", "ls", stdout=StringIO())
        times.append(time.perf_counter() - started)
    return times


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_idle_worker(engines: int = 50, window: float = 60) -> None:
    """Idle CPU and memory of one worker watching `engines` engine event streams."""
    from machines.models import Driver, Machine

    engine = os.getenv("DOCKER_HOST", "")
    if not engine.startswith("unix://"):
        print("\n== idle worker: skipped (export the test engine's DOCKER_HOST) ==")
        return
    _reset_machines()
    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    # Each machine is its own event stream; here they all lead to the one test engine.
    Machine.objects.bulk_create(
        Machine(name=f"w-{i:03d}", driver=none, engine_url=engine, state="running")
        for i in range(engines)
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while Machine.objects.filter(engine_reachable=True).count() < engines:
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not connect to every engine in 120 s")
            time.sleep(0.5)
        time.sleep(5)  # let start-up settle
        cpu0, t0 = _proc_cpu_seconds(worker.pid), time.monotonic()
        time.sleep(window)
        cpu = (_proc_cpu_seconds(worker.pid) - cpu0) / (time.monotonic() - t0) * 100
        threads = len(os.listdir(f"/proc/{worker.pid}/task"))
        print(f"\n== idle worker watching {engines} engine event streams ==")
        print(
            f"CPU {cpu:.2f} % of one core over {window:.0f} s (health checks every "
            f"{os.getenv('DOCKERDASH_HEALTH_CHECK_INTERVAL', '30')} s included); "
            f"RSS {_proc_rss_mib(worker.pid):.0f} MiB; {threads} threads"
        )
    finally:
        worker.terminate()
        worker.wait(60)
        _reset_machines()


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return (
        f"p50 {at(50):.1f} ms  p95 {at(95):.1f} ms  p99 {at(99):.1f} ms  max {ordered[-1]:.1f} ms"
    )


class _EngineEvents(threading.Thread):
    """The engine's own time of each pause/unpause of a container (its `docker events`)."""

    def __init__(self, engine: str, container_id: str) -> None:
        super().__init__(daemon=True)
        from machines.engine import clients

        self.client = clients.client(engine, timeout=30)
        self.stream = self.client.api.events(
            decode=True, filters={"container": container_id, "event": ["pause", "unpause"]}
        )
        self.times: queue.Queue[tuple[str, float]] = queue.Queue()

    def run(self) -> None:
        with contextlib.suppress(Exception):  # ends when closed
            for event in self.stream:
                self.times.put((event["Action"], event["timeNano"] / 1e6))

    def next(self, action: str) -> float:
        got, at_ms = self.times.get(timeout=10)
        assert got == action, (got, action)
        return at_ms

    def close(self) -> None:
        self.stream.close()
        self.client.close()


def bench_live(events: int = 120, clients: int = 500, fanout_events: int = 20) -> None:
    """Live container views: a container's state change on an engine to the DOM of a
    connected Chromium, then to 500 websocket clients of one machine page.

    The real path: `manage.py serve` (daphne + runner) watches the test engine; the bench
    pauses and unpauses a container with the docker SDK. The start of each event is the
    engine's own time for it (its `docker events` timeNano); the end is the page's
    MutationObserver (performance.timeOrigin + performance.now()) or the websocket
    client's receipt. One machine, one clock.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from machines.engine import clients
    from machines.lib.hostimage import BARE_HOST_IMAGE
    from machines.models import Container, Driver, Machine
    from machines.services.roles import OPERATOR
    from tests.browser import CHROMIUM, CHROMIUM_ARGS, free_port

    engine = os.getenv("DOCKER_HOST", "")
    if not engine.startswith("unix://") or not Path(CHROMIUM).exists():
        print("\n== live: skipped (export the test engine's DOCKER_HOST; needs Chromium) ==")
        return
    _reset_machines()
    user, _ = get_user_model().objects.get_or_create(username="bench-operator")
    user.set_password("bench-operator-pw-1234")
    user.save()
    user.groups.add(Group.objects.get(name=OPERATOR))
    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    machine = Machine.objects.create(name="bench", driver=none, engine_url=engine, state="running")
    docker = clients.client(engine, timeout=60)
    name = f"bench-live-{os.getpid()}"
    container = docker.containers.run(
        BARE_HOST_IMAGE, ["sleep", "3600"], name=name, detach=True, network_mode="none"
    )
    port = free_port()
    log = open(BENCH_DIR / "serve-live.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    timeline = _EngineEvents(engine, container.id)
    timeline.start()
    try:
        deadline = time.monotonic() + 60
        while not Container.objects.filter(container_id=container.id, state="running").exists():
            if time.monotonic() > deadline:
                raise SystemExit("the runner did not watch the engine within 60 s")
            time.sleep(0.2)
        row_id = f"container-{Container.objects.get(container_id=container.id).pk}"
        base_url = f"http://127.0.0.1:{port}"
        page_url = f"{base_url}/machines/{machine.name}/?q={name}"
        _bench_browser(base_url, page_url, row_id, container, timeline, events, CHROMIUM_ARGS)
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        socket_url = f"ws://127.0.0.1:{port}/ws/machines/{machine.pk}/containers/?q={name}"
        asyncio.run(
            _bench_fanout(
                port,
                socket_url,
                cookie,
                base_url,
                row_id,
                container,
                timeline,
                clients,
                fanout_events,
            )
        )
    finally:
        timeline.close()
        server.terminate()
        server.wait(60)
        log.close()
        container.remove(force=True)
        docker.close()
        _reset_machines()


def _bench_browser(base_url, page_url, row_id, container, timeline, events, args) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, log_in

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        log_in(page, base_url, "bench-operator", "bench-operator-pw-1234")
        page.goto(page_url)
        page.wait_for_selector(f"#{row_id}.cstate-running")
        # Each change of the row's state, as the DOM took it, on this machine's clock.
        page.evaluate(
            """rowId => {
              window.seen = [];
              let last = document.getElementById(rowId).className;
              new MutationObserver(() => {
                const row = document.getElementById(rowId);
                if (row && row.className !== last) {
                  last = row.className;
                  window.seen.push([last, performance.timeOrigin + performance.now()]);
                }
              }).observe(document.getElementById("containers-live"),
                         {subtree: true, childList: true, attributes: true});
            }""",
            row_id,
        )
        latencies, missed = [], 0
        for i in range(events):
            action, state = ("pause", "paused") if i % 2 == 0 else ("unpause", "running")
            getattr(container, action)()
            changed_at = timeline.next(action)
            try:
                page.wait_for_function(
                    f"window.seen.length > {i - missed} && "
                    f"window.seen[window.seen.length - 1][0] === 'cstate-{state}'",
                    timeout=5000,
                )
            except Exception:
                missed += 1
                continue
            seen_at = page.evaluate("window.seen[window.seen.length - 1][1]")
            latencies.append(seen_at - changed_at)
        browser.close()
    print("\n== live: a container's state change on the engine -> the DOM of one Chromium ==")
    print(
        f"{len(latencies)} events (pause/unpause, engine event time -> MutationObserver): "
        f"{_percentiles(latencies)}" + (f"; {missed} never shown" if missed else "")
    )


async def _bench_fanout(
    port, socket_url, cookie, base_url, row_id, container, timeline, clients, events
) -> None:
    from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

    loop = asyncio.get_running_loop()
    received: dict[str, list[float]] = {}
    opened: list[asyncio.Future] = []

    class Listener(WebSocketClientProtocol):
        def onOpen(self) -> None:
            self.factory.opened.set_result(self)

        def onMessage(self, payload: bytes, is_binary: bool) -> None:
            at_ms = time.time() * 1000
            text = payload.decode()
            for state in ("paused", "running"):
                if f'id="{row_id}" class="cstate-{state}"' in text:
                    received.setdefault(state, []).append(at_ms)

    async def connect() -> None:
        factory = WebSocketClientFactory(socket_url, origin=base_url, headers={"Cookie": cookie})
        factory.protocol = Listener
        factory.opened = loop.create_future()
        opened.append(factory.opened)
        await loop.create_connection(factory, "127.0.0.1", port)
        await asyncio.wait_for(factory.opened, 60)

    started = time.perf_counter()
    slots = asyncio.Semaphore(50)

    async def limited() -> None:
        async with slots:
            await connect()

    await asyncio.gather(*(limited() for _ in range(clients)))
    connect_s = time.perf_counter() - started
    await asyncio.sleep(1)  # their snapshots are in
    deliveries, last_client, missing = [], [], 0
    for i in range(events):
        action, state = ("pause", "paused") if i % 2 == 0 else ("unpause", "running")
        received.pop(state, None)
        await loop.run_in_executor(None, getattr(container, action))
        changed_at = await loop.run_in_executor(None, timeline.next, action)
        deadline = time.monotonic() + 10
        while len(received.get(state, ())) < clients and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        got = received.get(state, [])
        missing += clients - len(got)
        deliveries += [t - changed_at for t in got]
        if got:
            last_client.append(max(got) - changed_at)
    for future in opened:
        future.result().transport.abort()
    await asyncio.sleep(0.5)
    print(f"\n== live: the same, to {clients} websocket clients of one machine page ==")
    print(f"{clients} clients connected (with their snapshots) in {connect_s:.1f} s")
    print(f"{len(deliveries)} deliveries ({events} events x {clients}): {_percentiles(deliveries)}")
    print(f"until the last of the {clients} had it, per event: {_percentiles(last_client)}")
    if missing:
        print(f"{missing} deliveries never arrived within 10 s")


def bench_provision() -> None:
    from tests.bench_provision import bench_provision as run

    run()


def bench_terminal() -> None:
    from tests.bench_inside import bench_terminal as run

    run()


def bench_list() -> None:
    from tests.bench_fleet import bench_list as run

    run()


def bench_stats() -> None:
    from tests.bench_inside import bench_stats as run

    run()


def bench_health() -> None:
    from tests.bench_fleet import bench_health as run

    run()


def bench_import() -> None:
    from tests.bench_fleet import bench_import as run

    run()


def bench_api() -> None:
    from tests.bench_api import bench_api as run

    run()


def bench_history() -> None:
    from tests.bench_alerts import bench_history as run

    run()


def bench_outage() -> None:
    from tests.bench_outage import bench_outage as run

    run()


def bench_healthy() -> None:
    from tests.bench_outage import bench_healthy as run

    run()


def bench_kvm() -> None:
    from tests.bench_kvm import bench_kvm as run

    run()


def bench_cli() -> None:
    from tests.bench_cli import bench_create_generic, bench_ls_one

    bench_ls_one()
    bench_create_generic()


def bench_first_run() -> None:
    from tests.bench_run import bench_first_run as run

    run()


SECTIONS = {
    "first-run": bench_first_run,
    "ls": bench_ls,
    "cli": bench_cli,
    "import": bench_import,
    "list": bench_list,
    "health": bench_health,
    "worker": bench_idle_worker,
    "provision": bench_provision,
    "live": bench_live,
    "terminal": bench_terminal,
    "stats": bench_stats,
    "kvm": bench_kvm,
    "api": bench_api,
    "history": bench_history,
    "outage": bench_outage,
    "healthy": bench_healthy,
}


def main(argv: list[str]) -> None:
    setup_django()
    for name in argv or list(SECTIONS):
        SECTIONS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
