"""The scale-out shape: two web processes and two workers on PostgreSQL and Redis."""

from __future__ import annotations

import os
import re
import signal
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from machines.drivers.container.driver import INSTANCE_LABEL

from .browser import log_in, serve
from .fleet import REQUIRED, _unavailable
from .helpers import ROOT, Process, wait_until

pytestmark = pytest.mark.scale
PASSWORD = "scale-admin-pw-1234"


@pytest.fixture
def scale_env(tmp_path, engine_url):
    """A fresh PostgreSQL database, migrated, with an admin; the environment to use it."""
    base = os.getenv("DOCKERDASH_TEST_DATABASE_URL")
    redis = os.getenv("DOCKERDASH_TEST_REDIS_URL")
    if not (base and redis):
        _unavailable("no PostgreSQL/Redis (`make test` starts them with scripts/test-services)")
    name = f"dockerdash_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base)
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}")),
        "REDIS_URL": redis,
        "DOCKERDASH_DATA_DIR": str(tmp_path),
        "DOCKER_HOST": engine_url,
        "DOCKERDASH_ADMIN_PASSWORD": PASSWORD,
    }
    for args in (["migrate", "--noinput"], ["createadmin"]):
        proc = Process(args, env)
        assert proc.proc.wait(120) == 0, proc.output()
        proc.close()
    yield env
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _query(env: dict, sql: str, *params):
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        return conn.execute(sql, params).fetchall()


def test_two_webs_two_workers_share_operations_logs_and_engine_watches(
    scale_env, browser, parent, host_images, engine_url
):
    processes: list[Process] = []
    try:
        web_a, url_a = serve("--no-runner", env=scale_env)
        web_b, url_b = serve("--no-runner", env=scale_env)
        processes += [web_a, web_b]

        # Create a machine through web A while no worker runs: the operation waits, pending.
        page_a = browser.new_page()
        log_in(page_a, url_a, "admin", PASSWORD)
        page_a.goto(f"{url_a}/machines/new/")
        name = f"scale-{uuid.uuid4().hex[:6]}"
        page_a.fill("#id_name", name)
        page_a.select_option("#id_driver", label="container (container)")
        page_a.wait_for_selector("#id_opt-image")
        page_a.click("button.primary")
        page_a.wait_for_url(f"{url_a}/machines/{name}/")
        op_id = int(re.search(r'id="operation-(\d+)"', page_a.content())[1])

        # Watch it on web B, connected before any worker exists.
        page_b = browser.new_page()
        log_in(page_b, url_b, "admin", PASSWORD)
        page_b.goto(f"{url_b}/machines/{name}/")
        page_b.wait_for_selector(f"#log-{op_id}[data-live=synced]")
        assert page_b.locator(f"#log-{op_id} li").count() == 0

        # Two workers start; one runs the operation, its log streams to web B over Redis.
        for _ in range(2):
            processes.append(Process(["worker"], scale_env, ready="started"))
        page_b.wait_for_selector(f"#log-{op_id} li:text('Done')", timeout=120_000)
        lines = page_b.locator(f"#log-{op_id} li").all_inner_texts()
        assert any(
            "[1/" in line and "Create the host with the container driver" in line for line in lines
        )
        [(status, claimed_by)] = _query(
            scale_env, "SELECT status, claimed_by FROM machines_operation WHERE id = %s", op_id
        )
        assert status == "succeeded"
        assert claimed_by in {f"{p.pid}" for p in processes[2:]} or claimed_by.endswith(
            tuple(f":{p.pid}" for p in processes[2:])
        )

        # An engine watched by exactly one worker; killing it moves the watch to the other.
        attach = Process(
            ["machine", "create", "-d", "none", "--url", engine_url, "parent-eng"], scale_env
        )
        assert attach.proc.wait(120) == 0, attach.output()

        def owner():
            rows = _query(
                scale_env,
                "SELECT lease_owner, engine_reachable FROM machines_machine "
                "WHERE name = 'parent-eng'",
            )
            return rows[0][0] if rows and rows[0][0] and rows[0][1] else None

        first_owner = wait_until(owner, timeout=60)
        victim = next(p for p in processes[2:] if first_owner.endswith(f":{p.pid}"))
        survivor = next(p for p in processes[2:4] if p is not victim)
        victim.kill(signal.SIGKILL)
        wait_until(lambda: owner() == first_owner.rsplit(":", 1)[0] + f":{survivor.pid}", 60)
        # The new watcher streams: a container started now shows up in the snapshot.
        cname = f"seen-{uuid.uuid4().hex[:6]}"
        parent.containers.run(
            host_images["dockerdash/host:bookworm-bare"],
            ["sleep", "60"],
            name=cname,
            detach=True,
            network_mode="none",
        )
        try:
            wait_until(
                lambda: _query(
                    scale_env, "SELECT 1 FROM machines_container WHERE name = %s", cname
                ),
                timeout=30,
            )
        finally:
            parent.containers.get(cname).remove(force=True)
    finally:
        for process in processes:
            process.close()
        instance = (Path(scale_env["DOCKERDASH_DATA_DIR"]) / "instance.id").read_text().strip()
        mine = {"label": f"{INSTANCE_LABEL}={instance}"}
        for c in parent.containers.list(all=True, filters=mine):
            c.remove(force=True, v=True)


def test_required_services_are_there_in_ci():
    if REQUIRED:
        assert os.getenv("DOCKERDASH_TEST_DATABASE_URL") and os.getenv("DOCKERDASH_TEST_REDIS_URL")
    assert (ROOT / "scripts" / "test-services").exists()
