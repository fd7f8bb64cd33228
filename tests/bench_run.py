"""A new user's first `make run`: a fresh `git clone` of this commit to the login page
answering 200, with each phase's line as `make run` prints it (issue 27: within 30 s where the
package index is local)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (our own URL)
            return response.status == 200
    except OSError:
        return False


def first_run_seconds(timeout: float = 300) -> tuple[float, list[tuple[float, str]]]:
    """Seconds from `make run` in a fresh clone to the login page, and the phases' lines with
    the second each appeared."""
    work = Path(tempfile.mkdtemp(prefix="dockerdash-first-run-"))
    try:
        clone = work / "dockerdash"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKERDASH_", "DJANGO_"))}
        start = time.monotonic()
        make = subprocess.Popen(
            ["make", "run", f"BIND=127.0.0.1:{port}"],
            cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        phases: list[tuple[float, str]] = []

        def read() -> None:
            for line in make.stdout:
                if line.startswith("dockerdash:"):
                    phases.append((time.monotonic() - start, line.strip()))

        threading.Thread(target=read, daemon=True).start()
        url = f"http://127.0.0.1:{port}/accounts/login/"
        try:
            while not _answers(url):
                if make.poll() is not None or time.monotonic() - start > timeout:
                    raise RuntimeError(f"make run ended or hung ({make.returncode}): {phases}")
                time.sleep(0.1)
            return time.monotonic() - start, phases
        finally:
            os.killpg(make.pid, signal.SIGTERM)
            make.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_first_run() -> None:
    seconds, phases = first_run_seconds()
    load = os.getloadavg()[0]
    print(f"fresh clone -> `make run` -> login page 200: {seconds:.1f} s (load {load:.1f})")
    for at, line in phases:
        print(f"  {at:5.1f} s  {line}")
