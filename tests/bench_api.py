"""`make bench` figures of issue 23: the remote `dockerdash ls` (client mode, a fresh HOME,
1,000 machines on the server) wall time, and the API's list of 1,000 machines (p50/p99 of
200 requests, one page of 1,000), both against a real `manage.py serve --no-runner`."""

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
DOCKERDASH = str(Path(sys.executable).parent / "dockerdash")


def _serve(port: int, log_path: Path) -> subprocess.Popen:
    from tests.bench import _env

    log = open(log_path, "w")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-runner", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _list_p(port: int, token: str, query: str, n: int = 200) -> tuple[float, float]:
    times = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(n):
        start = time.perf_counter()
        conn.request(
            "GET", f"/api/v1/machines{query}", headers={"Authorization": f"Bearer {token}"}
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000


def bench_api() -> None:
    from django.contrib.auth.models import Group, User
    from django.test.utils import override_settings

    from machines.services import tokens
    from tests.bench import BENCH_DIR, _reset_machines
    from tests.bench_fleet import _fill, _wait_listening
    from tests.browser import free_port

    _reset_machines()
    _fill(1000, 100)
    user, _ = User.objects.get_or_create(username="bench-api")
    user.groups.add(Group.objects.get(name="admin"))
    _, token = tokens.mint(user, "bench", "read")
    port = free_port()
    print("\n== API and remote client (serve --no-runner, SQLite, 1,000 machines) ==")
    with override_settings(API_RATE_LIMIT=0):
        os.environ["DOCKERDASH_API_RATE_LIMIT"] = "0"
        server = _serve(port, BENCH_DIR / "serve-api.log")
    try:
        _wait_listening(port)
        for label, query in (("a page of 50", ""), ("all 1,000 in one page", "?per_page=1000")):
            p50, p99 = _list_p(port, token, query)
            print(f"GET /api/v1/machines, {label:<22} p50 {p50:.0f} ms   p99 {p99:.0f} ms")
        with tempfile.TemporaryDirectory() as home:
            env = {"PATH": os.environ["PATH"], "HOME": home}
            url = f"http://127.0.0.1:{port}"
            subprocess.run([DOCKERDASH, "login", url, "--token", token], env=env, check=True,
                           capture_output=True)  # fmt: skip
            walls = []
            for _ in range(8):
                start = time.perf_counter()
                done = subprocess.run([DOCKERDASH, "ls"], env=env, capture_output=True, check=True)
                walls.append(time.perf_counter() - start)
            rows = done.stdout.decode().count("\n")
            median = statistics.median(walls)
            print(f"dockerdash ls (client, {rows} lines)      median {median:.2f} s", end="")
            print(f"   best {min(walls):.2f} s")
    finally:
        server.terminate()
        server.wait(60)
        os.environ.pop("DOCKERDASH_API_RATE_LIMIT", None)
    _reset_machines()
