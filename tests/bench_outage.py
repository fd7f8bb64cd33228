"""`make bench` figures for a fleet that fails and one that is healthy (issue 19).

- outage: 1,000 TLS machines imported from a docker-machine store, 900 at loopback ports
  that refuse and 100 at a local listener that accepts and never answers (loopback only),
  watched by the embedded `manage.py serve`: after 60 s its threads, the load average, its
  CPU, the list's first byte for a logged-in user, a change pushed to the open list, and
  how long SIGTERM takes to end it.
- healthy: 50/100/200 engines that answer (the test engine, reached through 200 loopback
  ports of a TLS-terminating forwarder in this process): serve's memory and threads, and a
  container's state change on the engine to the DOM of a Chromium page.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _serve(port: int, log_name: str, *args: str) -> subprocess.Popen:
    from tests.bench import BENCH_DIR, _env

    log = open(BENCH_DIR / log_name, "w")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}", *args],
        cwd=ROOT,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _threads(pid: int) -> tuple[int, str]:
    """How many threads, and how many of each name."""
    names: dict[str, int] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/comm") as f:
            name = re.sub(r"[-_]?\d+$", "", f.read().strip())
        names[name] = names.get(name, 0) + 1
    ordered = ", ".join(f"{n} {k}" for k, n in sorted(names.items(), key=lambda kv: -kv[1]))
    return sum(names.values()), ordered


def _refusing_ports(count: int) -> list[int]:
    """Distinct loopback ports nobody listens on (connecting is refused)."""
    ports: set[int] = set()
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.add(s.getsockname()[1])
    return sorted(ports)


def _import_outage_fleet(silent_port: int) -> None:
    from machines.models import Machine
    from tests.bench import BENCH_DIR, _env, _reset_machines
    from tests.bench_fleet import _bench_store

    store = BENCH_DIR / "dmstore-outage-1000"
    # Made once (2,000 RSA keys) and kept; the addresses are set after the import.
    _bench_store(store, 1000, "tcp://127.0.0.1:1", "tcp://127.0.0.1:1")
    _reset_machines()
    subprocess.run(
        [sys.executable, "manage.py", "machine", "import-docker-machine", "--storage-path", store],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        check=False,
    )
    machines = list(Machine.objects.order_by("name").values_list("pk", flat=True))
    ports = _refusing_ports(900)
    for n, pk in enumerate(machines):
        port = silent_port if n < 100 else ports[n - 100]
        Machine.objects.filter(pk=pk).update(
            engine_url=f"tcp://127.0.0.1:{port}", state=Machine.State.RUNNING
        )


def _csrf(port: int, cookie: str) -> tuple[str, str]:
    """A CSRF cookie and token, as a browser gets them from a page."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/", headers={"Cookie": cookie, "Host": f"127.0.0.1:{port}"})
    response = conn.getresponse()
    body = response.read().decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', body).group(1)
    set_cookie = response.getheader("Set-Cookie") or ""
    csrf_cookie = re.search(r"csrftoken=([^;]+)", set_cookie)
    conn.close()
    return (csrf_cookie.group(1) if csrf_cookie else ""), token


async def _push_delay(port: int, cookie: str, name: str, pk: int) -> float:
    """Seconds from an operator's POST changing a machine's tags to the open list's socket
    carrying that row."""
    from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

    loop = asyncio.get_running_loop()
    got: asyncio.Future = loop.create_future()
    opened: asyncio.Future = loop.create_future()
    tag = f"pushed{int(time.time())}"

    class Listener(WebSocketClientProtocol):
        def onOpen(self) -> None:
            opened.set_result(self)

        def onMessage(self, payload: bytes, is_binary: bool) -> None:
            text = payload.decode()
            if f'id="machine-{pk}"' in text and tag in text and not got.done():
                got.set_result(time.perf_counter())

    base = f"http://127.0.0.1:{port}"
    factory = WebSocketClientFactory(
        f"ws://127.0.0.1:{port}/ws/machines/", origin=base, headers={"Cookie": cookie}
    )
    factory.protocol = Listener
    await loop.create_connection(factory, "127.0.0.1", port)
    socket_ = await asyncio.wait_for(opened, 30)
    await asyncio.sleep(1)  # its snapshot is in
    csrf_cookie, token = await loop.run_in_executor(None, _csrf, port, cookie)
    started = time.perf_counter()
    await loop.run_in_executor(
        None, _post_tags, port, f"{cookie}; csrftoken={csrf_cookie}", token, name, tag
    )
    try:
        return await asyncio.wait_for(got, 10) - started
    except TimeoutError:
        return float("inf")
    finally:
        socket_.transport.abort()


def _post_tags(port: int, cookie: str, token: str, name: str, tag: str) -> None:
    import http.client
    from urllib.parse import urlencode

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = urlencode({"tags": f"{tag}=1"})
    headers = {
        "Cookie": cookie,
        "Host": f"127.0.0.1:{port}",
        "X-CSRFToken": token,
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": f"http://127.0.0.1:{port}",
        "Referer": f"http://127.0.0.1:{port}/",
        "HX-Request": "true",
    }
    conn.request("POST", f"/machines/{name}/tags/", body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 200:
        raise SystemExit(f"POST tags: {response.status}")


def _stop_time(server: subprocess.Popen) -> float:
    started = time.perf_counter()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        return float("inf")
    return time.perf_counter() - started


def bench_outage(window: float = 60) -> None:
    """1,000 TLS machines (900 refusing, 100 silent), embedded serve, after `window` s."""
    from machines.models import Machine
    from tests.bench import _proc_cpu_seconds, _proc_rss_mib, _reset_machines
    from tests.bench_fleet import _get, _session_cookie, _wait_listening
    from tests.browser import free_port
    from tests.helpers import BlackHole

    silent = BlackHole()  # accepts on 127.0.0.1 and never answers: a data centre gone dark
    _import_outage_fleet(silent.port)
    cookie = _session_cookie()
    port = free_port()
    server = _serve(port, "serve-outage.log")
    print("\n== outage: 1,000 TLS machines, 900 refusing + 100 silent, embedded serve ==")
    try:
        _wait_listening(port)
        cpu0, t0 = _proc_cpu_seconds(server.pid), time.monotonic()
        time.sleep(window)
        cpu1, t1 = _proc_cpu_seconds(server.pid), time.monotonic()
        first = (cpu1 - cpu0) / (t1 - t0) * 100
        time.sleep(window)
        cpu = (_proc_cpu_seconds(server.pid) - cpu1) / (time.monotonic() - t1) * 100
        load = os.getloadavg()
        threads, names = _threads(server.pid)
        firsts = sorted(_get(port, "/", cookie)[0] * 1000 for _ in range(10))
        print(
            f"after {2 * window:.0f} s: {threads} threads ({names}); load average "
            f"{load[0]:.2f} (1 min, whole machine); serve's CPU {cpu:.1f} % of a core over "
            f"the second minute ({first:.1f} % over the first, start-up included); "
            f"RSS {_proc_rss_mib(server.pid):.0f} MiB; "
            f"{Machine.objects.filter(engine_reachable=False).count()} stored unreachable"
        )
        print(
            f"list first byte, 10 logged-in requests: p50 {statistics.median(firsts):.0f} ms, "
            f"p99 {firsts[-1]:.0f} ms"
        )
        target = Machine.objects.order_by("name").first()
        push = asyncio.run(_push_delay(port, cookie, target.name, target.pk))
        print(f"a tag change POSTed -> the open list's socket {push * 1000:.0f} ms")
    finally:
        print(f"SIGTERM -> exit {_stop_time(server):.2f} s")
        silent.close()
    _baseline(cookie)
    _reset_machines()


def _baseline(cookie: str) -> None:
    """The same list from `serve --no-runner` (nothing watched), now: what the machine's
    own load costs the list, for comparison."""
    from tests.bench_fleet import _get, _wait_listening
    from tests.browser import free_port

    port = free_port()
    server = _serve(port, "serve-outage-baseline.log", "--no-runner")
    try:
        _wait_listening(port)
        _get(port, "/", cookie)
        firsts = sorted(_get(port, "/", cookie)[0] * 1000 for _ in range(10))
        print(
            f"the same list from serve --no-runner (no engine watched), for comparison: "
            f"p50 {statistics.median(firsts):.0f} ms, p99 {firsts[-1]:.0f} ms"
        )
    finally:
        _stop_time(server)


class Forwarder:
    """`count` loopback TLS ports (a server certificate of the dashboard's CA for 127.0.0.1)
    forwarding to one engine's unix socket: one real engine, many engines to a watcher."""

    def __init__(self, engine_socket: str, count: int, cert: str, key: str) -> None:
        self.engine_socket = engine_socket
        folder = Path(tempfile.mkdtemp(prefix="fwd-"))
        (folder / "c.pem").write_text(cert)
        (folder / "k.pem").write_text(key)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(folder / "c.pem", folder / "k.pem")
        self.loop = asyncio.new_event_loop()
        self.ports: list[int] = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._listen(count), self.loop).result(60)

    async def _listen(self, count: int) -> None:
        for _ in range(count):
            server = await asyncio.start_server(self._pipe, "127.0.0.1", 0, ssl=self.context)
            self.ports.append(server.sockets[0].getsockname()[1])

    async def _pipe(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.engine_socket)

        async def copy(src, dst) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


def _wait_reachable(count: int, timeout: float = 180) -> float:
    from machines.models import Machine

    started = time.monotonic()
    while Machine.objects.filter(engine_reachable=True).count() < count:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"serve did not reach {count} engines within {timeout:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


def _forwarded_machines(forwarder: Forwarder, cert: str, start: int, end: int) -> None:
    from machines.models import Driver, Machine

    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    Machine.objects.bulk_create(
        Machine(
            name=f"h-{n:03d}",
            driver=none,
            engine_url=f"tcp://127.0.0.1:{forwarder.ports[n]}",
            tls_server_cert=cert,
            state="running",
        )
        for n in range(start, end)
    )


def bench_healthy(sizes: tuple[int, ...] = (50, 100, 200), events: int = 40) -> None:
    """Engines that answer: serve's memory and threads as it watches 50, 100, 200 of them
    (one private dockerd through the forwarder's ports), then, with the 200 streams open, a
    container's change to the DOM of its machine's page. That container lives on another
    private dockerd: behind the forwarder every change would come 200 times, once per
    stream, which is not what 200 engines make; and the shared test engine, busy with other
    work, would send each of its events 200 times too."""
    from machines.models import Machine
    from machines.pki import certs
    from tests.bench import _reset_machines
    from tests.bench_fleet import _session_cookie
    from tests.browser import CHROMIUM
    from tests.private_engine import private_dockerd

    engine = os.getenv("DOCKER_HOST", "")
    if not engine.startswith("unix://") or not Path(CHROMIUM).exists():
        print("\n== healthy: skipped (export the test engine's DOCKER_HOST; needs Chromium) ==")
        return
    _reset_machines()
    _session_cookie()  # the bench operator, with its password
    host = Machine(name="forwarder", ip="127.0.0.1")
    certs.issue_server_cert(host, certs.get_or_create_ca())
    with private_dockerd(Path(tempfile.mkdtemp(prefix="quiet-"))) as quiet:
        forwarder = Forwarder(
            str(quiet.socket), max(sizes), host.tls_server_cert, host.tls_server_key
        )
        _healthy(forwarder, host.tls_server_cert, sizes, events)


def _healthy(forwarder: Forwarder, cert: str, sizes: tuple[int, ...], events: int) -> None:
    from machines.engine import clients
    from machines.models import Container, Driver, Machine
    from tests.bench import _bench_browser, _EngineEvents, _proc_rss_mib, _reset_machines
    from tests.bench_fleet import _wait_listening
    from tests.browser import CHROMIUM_ARGS, free_port
    from tests.private_engine import private_dockerd
    from tests.tinyimage import TINY, tiny_image_tar

    port = free_port()
    server = _serve(port, "serve-healthy.log")
    print("\n== healthy: engines that answer, watched by the embedded serve ==")
    made = 0
    with private_dockerd(Path(tempfile.mkdtemp(prefix="healthy-"))) as own:
        docker = clients.client(own.url, timeout=60)
        docker.api.import_image_from_data(tiny_image_tar(), repository=TINY.split(":")[0], tag="1")
        container = docker.containers.run(
            TINY, ["/bin/sleep", "86400"], detach=True, network_mode="none"
        )
        timeline = _EngineEvents(own.url, container.id)
        timeline.start()
        try:
            _wait_listening(port)
            for size in sizes:
                _forwarded_machines(forwarder, cert, made, size)
                made = size
                took = _wait_reachable(size)
                time.sleep(10)  # settle
                threads, names = _threads(server.pid)
                print(
                    f"N={size}: all reachable {took:.0f} s after being added; RSS "
                    f"{_proc_rss_mib(server.pid):.0f} MiB; {threads} threads ({names})"
                )
            none = Driver.objects.get(name="none")
            measured = Machine.objects.create(
                name="measured", driver=none, engine_url=own.url, state="running"
            )
            row = None
            while row is None:
                row = Container.objects.filter(machine=measured, container_id=container.id)
                row = row.first()
                time.sleep(0.2)
            page_url = f"http://127.0.0.1:{port}/machines/measured/?q={container.name}"
            print(f"with the {made} streams open, one more engine's container:")
            _bench_browser(
                f"http://127.0.0.1:{port}",
                page_url,
                f"container-{row.pk}",
                container,
                timeline,
                events,
                CHROMIUM_ARGS,
            )
        finally:
            print(f"SIGTERM -> exit {_stop_time(server):.2f} s with {made + 1} streams open")
            timeline.close()
            container.remove(force=True)
            docker.close()
            _reset_machines()
