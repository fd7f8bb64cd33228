"""`make bench` figures for a fleet of a thousand (issue 15): the machine list (first byte and
size, a search, 10,000 machines), a health-check cycle, a docker-machine store import.

Run from tests.bench (`python -m tests.bench list health import`) once Django is set up;
the list is measured over HTTP against a real `manage.py serve` (daphne), logged in.
"""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fill(total: int, silent: int, engine: str = "tcp://192.0.2.1:2376") -> None:
    """`total` machines as stored after health checks; `silent` of them never answered."""
    from django.utils import timezone

    from machines.models import Driver, Machine

    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    now = timezone.now()
    Machine.objects.bulk_create(
        [
            Machine(
                name=f"m-{i:05d}",
                driver=none,
                engine_url=engine,
                state=Machine.State.RUNNING,
                docker_version="28.2.2",
                last_seen=None if i < silent else now,
                last_checked=now,
                engine_reachable=i >= silent,
                last_error="Engine unreachable: timed out" if i < silent else "",
            )
            for i in range(total)
        ],
        batch_size=500,
    )


def _session_cookie() -> str:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from machines.services.roles import OPERATOR

    user, _ = get_user_model().objects.get_or_create(username="bench-operator")
    user.set_password("bench-operator-pw-1234")
    user.save()
    user.groups.add(Group.objects.get(name=OPERATOR))
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def _get(port: int, path: str, cookie: str) -> tuple[float, float, int]:
    """(first byte s, whole response s, bytes) of one GET, on a fresh connection; a path
    ending in " htmx" is asked as htmx asks (the list's partial)."""
    headers = {"Cookie": cookie, "Host": "127.0.0.1"}
    if path.endswith(" htmx"):
        path, headers["HX-Request"] = path.removesuffix(" htmx"), "true"
        headers["HX-Target"] = "machine-list"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    first = time.perf_counter() - started
    body = response.read()
    total = time.perf_counter() - started
    conn.close()
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {body[:300]!r}")
    return first, total, len(body)


def _measure(port: int, path: str, cookie: str, runs: int = 8) -> str:
    _get(port, path, cookie)  # warm the process's caches (templates, first queries)
    samples = [_get(port, path, cookie) for _ in range(runs)]
    first = statistics.median(s[0] for s in samples) * 1000
    total = statistics.median(s[1] for s in samples) * 1000
    size = samples[-1][2] / 1024
    return f"first byte {first:6.1f} ms  whole {total:6.1f} ms  {size:7.1f} KB"


def bench_list() -> None:
    """The machine list as a logged-in operator gets it: 1,000 machines (100 silent) and
    10,000, the page and a search by name, median of 8 over HTTP from `manage.py serve`."""
    from tests.bench import BENCH_DIR, _env, _reset_machines
    from tests.browser import free_port

    _reset_machines()
    cookie = _session_cookie()
    print("\n== machine list over HTTP (serve --no-runner, SQLite, median of 8) ==")
    for total, silent in ((1000, 100), (10000, 1000)):
        _reset_machines()
        _fill(total, silent)
        port = free_port()
        log = open(BENCH_DIR / "serve-list.log", "w")  # noqa: SIM115
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-runner", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_listening(port)
            name = f"m-{total // 2:05d}"
            for label, path in (
                ("the list", "/"),
                (f"search {name}", f"/?q={name}"),
                ("search, htmx partial", f"/?q={name} htmx"),
                ("state=running, page 3", "/?state=running&page=3"),
            ):
                figures = _measure(port, path, cookie)
                print(f"{total:>6} machines ({silent} silent) {label:<24} {figures}")
        finally:
            server.terminate()
            server.wait(60)
            log.close()
    _reset_machines()


def _wait_listening(port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("serve did not listen within 60 s")


def bench_health() -> None:
    """One full health-check cycle of a runner over 1,000 machines of which 100 never answer
    (black-holed), and how long an operation requested meanwhile waits to start."""
    from machines.models import Driver, Machine, Operation
    from machines.operations import actions as operations
    from machines.operations import runner
    from tests.bench import _reset_machines
    from tests.fleet import closed_port
    from tests.helpers import BlackHole

    engine = os.getenv("DOCKER_HOST", "")
    if not engine.startswith("unix://"):
        print("\n== health: skipped (export the test engine's DOCKER_HOST) ==")
        return
    _reset_machines()
    with tempfile.TemporaryDirectory() as tmp:
        hole = BlackHole(os.path.join(tmp, "hole.sock"))
        _fill(1000, 0, engine)
        Machine.objects.filter(name__lt="m-00100").update(engine_url=hole.address)
        worker = runner.Runner(kind="bench")
        Machine.objects.update(lease_owner=worker.name)
        generic = Driver.objects.get_or_create(name="generic", defaults={"kind": "generic"})[0]
        from machines.lib.ssh import generate_key

        target = Machine.objects.create(
            name="op-target",
            ssh_private_key=generate_key()[0],
            driver=generic,
            ip="127.0.0.1",
            ssh_port=closed_port(),
            state="running",
        )
        import threading

        started = time.perf_counter()
        ended: list[float] = []

        def run_cycle() -> None:
            worker._health_cycle()
            ended.append(time.perf_counter())

        cycle = threading.Thread(target=run_cycle)
        cycle.start()
        time.sleep(0.5)
        requested = time.perf_counter()
        op = operations.request(target, Operation.Kind.PROVISION, via="cli")
        claimed = runner.claim(op.pk, worker="bench")
        waited = time.perf_counter() - requested
        if claimed is not None:
            runner.run_claimed(claimed)
        ran = time.perf_counter() - requested
        cycle.join()
        took = ended[0] - started
        # Again, as every interval: this time little changes, so little is published.
        steady_started = time.perf_counter()
        worker._health_cycle()
        steady = time.perf_counter() - steady_started
        hole.close()
        worker.health_pool.shutdown()
        worker.watching.stop()
        reachable = Machine.objects.filter(engine_reachable=True).count()
        print("\n== health checks: one cycle over 1,000 machines, 100 black-holed ==")
        print(
            f"first cycle {took:.1f} s, next {steady:.1f} s (interval {_interval()} s); "
            f"{reachable} reachable; an operation "
            f"requested during it claimed after {waited * 1000:.0f} ms (it then failed in "
            f"{ran:.1f} s, SSH refused until its timeout, as it would anyway)"
        )
    _reset_machines()


def _interval() -> int:
    from django.conf import settings

    return settings.HEALTH_CHECK_INTERVAL


def _rsa_pem(_: int) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _bench_store(root: Path, total: int, engine: str, hole: str):
    """A docker-machine store of `total` machines attached by URL (900 to the test engine,
    the rest to a black hole), made once and kept: its 2,000 RSA keys take a while."""
    import multiprocessing

    from cryptography.hazmat.primitives import serialization

    from tests import dmstores

    if (root / "complete").exists():
        return
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    with multiprocessing.Pool(2) as pool:
        pems = pool.map(_rsa_pem, range(2 * total + 2))  # and the CA's, the client's
    keys = iter(
        serialization.load_pem_private_key(p.encode(), None, unsafe_skip_rsa_key_validation=True)
        for p in pems
    )
    original, dmstores.new_key = dmstores.new_key, lambda: next(keys)
    try:
        store = dmstores.DockerMachineStore(root)
        for i in range(total):
            url = hole if i < total // 10 else engine
            store.add(f"dm-{i:04d}", driver="none", URL=url)
    finally:
        dmstores.new_key = original
    (root / "complete").write_text("")


def bench_import(total: int = 1000) -> None:
    """import-docker-machine of a 1,000-machine store (100 of them never answer), whole
    command, as a user runs it."""
    from tests.bench import BENCH_DIR, _env, _reset_machines
    from tests.helpers import BlackHole

    engine = os.getenv("DOCKER_HOST", "")
    if not engine.startswith("unix://"):
        print("\n== import: skipped (export the test engine's DOCKER_HOST) ==")
        return
    hole_path = BENCH_DIR / "import-hole.sock"
    hole_path.unlink(missing_ok=True)
    hole = BlackHole(str(hole_path))
    store = BENCH_DIR / f"dmstore-{total}"
    started = time.perf_counter()
    _bench_store(store, total, engine, hole.address)
    made = time.perf_counter() - started
    _reset_machines()
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "machine",
            "import-docker-machine",
            "--storage-path",
            str(store),
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - started
    hole.close()
    from machines.models import Machine

    reachable = Machine.objects.filter(engine_reachable=True).count()
    print(f"\n== import-docker-machine: a store of {total} machines, {total // 10} never answer ==")
    print(
        f"{took:.1f} s for {Machine.objects.count()} machines ({reachable} reachable), exit "
        f"{done.returncode}; (making the store: {made:.0f} s, kept for the next run)"
    )
    if done.returncode:
        print(done.stdout[-2000:], done.stderr[-2000:])
    _reset_machines()
