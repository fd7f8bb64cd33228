"""A real browser (Debian's Chromium driven by Playwright) and the dashboard served by daphne."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from .fleet import _unavailable
from .helpers import Process, process_env

CHROMIUM = os.getenv("DOCKERDASH_CHROMIUM", "/usr/bin/chromium")
# This machine's network is closed: without these Chromium keeps reaching for Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


# Per module, not per session: sync Playwright keeps an event loop running in this thread
# while it lives, and the asyncio tests (consumers) that run after it need the thread free.
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Sync Playwright runs its loop in this thread, so Django takes the test's ORM calls for
    # calls from async code: allowed while the browser lives, and only then, so that the
    # consumer tests still catch ORM calls made from async code.
    before = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if before is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = before


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(*extra: str, env: dict[str, str] | None = None) -> tuple[Process, str]:
    port = free_port()
    # The dashboard runs as it does for users: an ORM call from async code fails there too.
    env = {k: v for k, v in (env or process_env()).items() if k != ASYNC_UNSAFE}
    process = Process(
        ["serve", "--bind", f"127.0.0.1:{port}", *extra], env, ready="dockerdash is serving"
    )
    return process, f"http://127.0.0.1:{port}"


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button.primary")
    page.wait_for_url(f"{base_url}/")
