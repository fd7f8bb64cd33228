"""Shared test helpers: waiting for outcomes, processes of our own, hosts that never answer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


MANAGE = f"{sys.executable} manage.py"


def run(command: str, env: dict[str, str], check: bool = True, timeout: float = 600):
    """Run a command line as a user would type it (through bash, from the repo's root);
    with `check`, fail showing everything it printed unless it exited 0."""
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def user_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A user's environment with a dockerdash data folder of its own and no DOCKER_*."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    # dockerdash's own settings: the suite's (tests.settings) are not importable from the
    # installed `dockerdash` command, and the data folder is given here anyway.
    base["DJANGO_SETTINGS_MODULE"] = "dockerdash.settings"
    return {**base, "DOCKERDASH_DATA_DIR": str(data_dir), **extra}


def wait_until(predicate: Callable[[], object], timeout: float = 30, every: float = 0.05):
    """Poll until predicate() is truthy; return its value or fail with what was waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Timed out after {timeout} s waiting for {predicate.__doc__ or predicate}"
            )
        time.sleep(every)


class BlackHole:
    """A TCP (or unix) listener that accepts connections and never says a word, like a host
    whose network drops everything after the handshake."""

    def __init__(self, path: str | None = None) -> None:
        if path:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(path)
            self.address = f"unix://{path}"
        else:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
            self.address = f"127.0.0.1:{self.port}"
        self.sock.listen(512)
        self.held: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


def process_env(**extra: str) -> dict[str, str]:
    """The environment for a dockerdash process sharing this test's database and keys."""
    db = connection.settings_dict
    env = {**os.environ, "DOCKERDASH_DATA_DIR": str(settings.DATA_DIR), **extra}
    # Set while a browser test runs (tests/browser.py), never for the dashboard's processes.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    return env


class Process:
    def __init__(self, args: list[str], env: dict[str, str], ready: str | None = None) -> None:
        self.log_path = Path(env["DOCKERDASH_DATA_DIR"]) / f"proc-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if ready:
            wait_until(lambda: ready in self.output() or self.proc.poll() is not None, 60)
            assert self.proc.poll() is None, self.output()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text()

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def team_member(username: str, role: str, group: str, selector: str):
    """A user with no global role, member of team `group`-team holding `role` on machine
    group `group` (the machines tagged `selector`)."""
    from django.contrib.auth import get_user_model

    from machines.models.teams import MachineGroup, Team, TeamRole

    user = get_user_model().objects.create_user(username=username, password=f"{username}-pw-1")
    machines, _ = MachineGroup.objects.get_or_create(name=group, defaults={"selector": selector})
    team, _ = Team.objects.get_or_create(name=f"{group}-team-{role}")
    TeamRole.objects.get_or_create(team=team, group=machines, defaults={"role": role})
    team.members.add(user)
    return user


def cancel_a_provision_on_a_frozen_host(host, name: str, command) -> None:
    """The host container paused, `command("provision", name)` waits in its first step (SSH);
    `command("cancel", name)` says the provision stops after that step and returns once it
    has, the host thawed meanwhile: cancel exits 0, the provision 1 ("Cancelled before step
    2"). `command` starts a CLI (the server's or the remote one) with its output piped."""
    host.pause()
    try:
        provision = command("provision", name)
        first = provision.stdout.readline()
        assert first.startswith("[1/") and "Connect to " in first, first
        cancel = command("cancel", name)
        said = cancel.stdout.readline().strip()  # printed at once, even into a pipe
        assert said == f"The provision of {name} stops at the end of its current step..."
    finally:
        host.unpause()
    out, err = cancel.communicate(timeout=120)
    assert (cancel.returncode, out.strip()) == (0, f"Cancelled the provision of {name}"), (
        err,
        provision.communicate(timeout=30),
    )
    out, err = provision.communicate(timeout=30)
    assert provision.returncode == 1 and "Cancelled before step 2" in err, (out, err)
