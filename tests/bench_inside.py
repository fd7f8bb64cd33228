"""`make bench` for what happens inside engines: a terminal's keystroke-to-echo latency in the
browser, and the cost of live stats for 50 running containers watched by one page.

Both run on a real container machine of the test fleet (systemd, its own engine reached with
TLS client certificates), served by `manage.py serve` and seen by Debian's Chromium. Run
alone with `python -m tests.bench terminal stats` (the test engine's DOCKER_HOST exported).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid

from tests.bench import BENCH_DIR, ROOT, _env, _percentiles, _proc_cpu_seconds, _proc_rss_mib


@contextlib.contextmanager
def _machine():
    """A running container machine, created as `machine create -d container` would."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from machines.lib.ssh import generate_key
    from machines.models import Driver, Machine, Operation
    from machines.operations import actions as operations
    from machines.operations import runner
    from machines.services.roles import OPERATOR

    user, _ = get_user_model().objects.get_or_create(username="bench-operator")
    user.set_password("bench-operator-pw-1234")
    user.save()
    user.groups.add(Group.objects.get(name=OPERATOR))
    engine = os.getenv("DOCKERDASH_TEST_ENGINE") or os.getenv("DOCKER_HOST", "")
    driver, _ = Driver.objects.update_or_create(
        name="bench-containers", defaults={"kind": "container", "settings": {"engine": engine}}
    )
    machine = Machine.objects.create(
        name=f"bench-{uuid.uuid4().hex[:6]}", driver=driver, ssh_private_key=generate_key()[0]
    )
    try:
        op = operations.request(machine, Operation.Kind.CREATE, via="cli")
        op = runner.run_claimed(runner.claim(op.pk, worker="bench"))
        if op.status != Operation.Status.SUCCEEDED:
            raise SystemExit(f"creating the bench machine failed: {op.error}")
        machine.refresh_from_db()
        yield machine
    finally:
        machine.get_driver().remove(machine)
        Operation.objects.filter(machine=machine).delete()
        machine.delete()


@contextlib.contextmanager
def _dashboard():
    from tests.browser import free_port

    port = free_port()
    log = open(BENCH_DIR / "serve-inside.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(60)
        log.close()


@contextlib.contextmanager
def _page():
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1366, "height": 900})
        browser.close()


# Keydown on the terminal's textarea (capture phase) to the first render after the echo.
MEASURE = """() => {
  const t = document.querySelector('[data-terminal]').dockerdashTerminal;
  window.echoes = []; window.network = []; let sent = null, arrived = null;
  t.term.textarea.addEventListener('keydown', () => {
    sent = performance.now(); arrived = null;
  }, true);
  t.ws.addEventListener('message', (e) => {
    if (sent !== null && arrived === null && typeof e.data !== 'string') {
      arrived = performance.now();
    }
  });
  t.term.onRender(() => {
    if (sent === null || arrived === null) return;
    window.network.push(arrived - sent);
    window.echoes.push(performance.now() - sent);
    sent = null;
  });
}"""


def bench_terminal(keystrokes: int = 200) -> None:
    """Keystroke to echo on screen, in Chromium, through the dashboard, to bash in a
    container of a machine's engine (TLS) and back."""
    from tests.browser import log_in
    from tests.inside import run_in

    with _machine() as machine, _dashboard() as (_, base_url), _page() as page:
        box = run_in(machine, "sleep 3600")
        log_in(page, base_url, "bench-operator", "bench-operator-pw-1234")
        page.goto(f"{base_url}/machines/{machine.name}/")
        page.locator(f"tr:has(td:text-is('{box.name}')) button", has_text="Terminal").click(
            timeout=60_000
        )
        page.wait_for_selector("#terminal-panel [data-terminal-status]:text-is('connected')")
        page.locator("#terminal-panel .xterm").click()
        page.wait_for_timeout(500)  # the prompt
        page.evaluate(MEASURE)
        for i in range(keystrokes):
            page.keyboard.press("a" if i % 2 == 0 else "Backspace")
            page.wait_for_function(f"window.echoes.length > {i}")
        echoes = page.evaluate("window.echoes")
        network = page.evaluate("window.network")
    print("\n== terminal: keystroke -> echo on screen (Chromium, bash in a container, TLS) ==")
    print(f"{len(echoes)} keystrokes: {_percentiles(echoes)} (goal: p99 <= 50 ms)")
    print(f"of which keydown -> the echo's websocket message: {_percentiles(network)}")


def _engine_connections(pid: int, address: str) -> int:
    """TCP connections of process `pid` to the engine at `address` (host:port)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True)
    return sum(
        1
        for line in out.stdout.splitlines()
        if f"pid={pid}," in line and re.search(rf"\s{re.escape(address)}\s", line + " ")
    )


def _usage(pid: int, seconds: float) -> tuple[float, float]:
    cpu0, t0 = _proc_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu = (_proc_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
    return cpu, _proc_rss_mib(pid)


def bench_stats(containers: int = 50, window: float = 60) -> None:
    """One page watching a machine with 50 running containers: the dashboard's CPU and
    memory, the engine streams it holds, and that none is left once the page is closed."""
    from tests.browser import log_in
    from tests.inside import run_in

    with _machine() as machine, _dashboard() as (server, base_url), _page() as page:
        for _ in range(containers):
            run_in(machine, "sleep 3600")
        engine = f"{machine.ip}:{machine.engine_port}"
        log_in(page, base_url, "bench-operator", "bench-operator-pw-1234")
        page.goto(f"{base_url}/machines/{machine.name}/")
        page.wait_for_function(
            f"document.querySelectorAll('td.stats .cpu').length >= {containers}", timeout=120_000
        )
        idle_cpu_before = None
        watching_cpu, watching_rss = _usage(server.pid, window)
        watching_streams = _engine_connections(server.pid, engine)
        page.goto(f"{base_url}/")  # the machine's page is closed
        time.sleep(10)  # the hub's linger (5 s) and a tick
        after_streams = _engine_connections(server.pid, engine)
        idle_cpu_before, idle_rss = _usage(server.pid, 20)
    print(f"\n== stats: one page watching {containers} running containers (TLS engine) ==")
    print(
        f"dashboard process while watching: CPU {watching_cpu:.1f} % of one core over "
        f"{window:.0f} s, RSS {watching_rss:.0f} MiB, {watching_streams} connections to the "
        f"engine (one stats stream per container, plus its event stream)"
    )
    print(
        f"10 s after the page closed: {after_streams} connections to the engine; CPU "
        f"{idle_cpu_before:.1f} % of one core over 20 s, RSS {idle_rss:.0f} MiB"
    )
