"""The whole story in a real browser, on a real container machine: create it through the UI
and watch its provisioning log stream to "Done", see containers started on its engine from
outside appear and change, and restart it from the list. Also makes the README's
screenshots (docs/*.png)."""

from __future__ import annotations

import re
import uuid

import pytest

from machines.engine import clients
from machines.models import Machine, Operation

from .browser import log_in, serve
from .fleet import make_machine
from .helpers import ROOT, wait_until
from .tinyimage import TINY, load_tiny_image

pytestmark = [pytest.mark.browser, pytest.mark.engine]
DOCS = ROOT / "docs"
PROVISIONING = 300_000  # ms: boot the host, install and configure Docker with TLS


@pytest.fixture
def removed_afterwards(container_driver):
    names: list[str] = []
    yield names
    for name in names:
        machine = Machine.objects.filter(name=name).first()
        if machine is not None:
            container_driver.get_driver().remove(machine)


def test_create_watch_provisioning_then_containers_then_restart_from_the_list(
    browser, admin_user, container_driver, parent, host_images, removed_afterwards, engine_url
):
    process, base_url = serve()
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.on("dialog", lambda dialog: dialog.accept())
        log_in(page, base_url, "admin", "admin-pw-1234")

        # Create: choose the driver, its fields appear, submit, land on the machine's page.
        page.goto(f"{base_url}/machines/new/")
        name = f"ui-{uuid.uuid4().hex[:6]}"
        removed_afterwards.append(name)
        page.fill("#id_name", name)
        page.select_option("#id_driver", label=f"{container_driver.name} (container)")
        page.wait_for_selector("#id_opt-image")
        page.click("button.primary")
        page.wait_for_url(f"{base_url}/machines/{name}/")
        op_id = int(re.search(r'id="operation-(\d+)"', page.content())[1])
        machine = Machine.objects.get(name=name)
        assert "Not provisioned yet" in page.inner_text(f"#connect-{machine.pk}")

        # The log streams while it runs (and the screenshot of it), until "Done".
        page.wait_for_selector(f"#log-{op_id} li:has-text('[3/')", timeout=PROVISIONING)
        page.locator(f"#operation-{op_id}").screenshot(path=str(DOCS / "provisioning.png"))
        page.wait_for_selector(f"#log-{op_id} li:has-text('Done')", timeout=PROVISIONING)
        page.wait_for_selector(f"#operation-head-{op_id} .badge.succeeded")
        # The page learnt the rest without a reload: engine, certificate, how to connect.
        connect = page.locator(f"#connect-{machine.pk}")
        connect.locator("a", has_text="Client certificates (zip)").wait_for()
        machine.refresh_from_db()
        assert machine.url.startswith("tcp://")
        assert f'export DOCKER_HOST="{machine.url}"' in connect.inner_text()
        assert f"docker context create {name} --docker" in connect.text_content()
        assert machine.docker_version in page.inner_text("#machine-summary")

        # A container started on its engine from outside (TLS, the docker SDK) shows up.
        load_tiny_image(machine)
        client = clients.client_for_machine(machine, timeout=60)
        try:
            container = client.containers.run(TINY, ["sleep", "3600"], name="worker", detach=True)
            row = page.locator(f"#containers-{machine.pk} tr:has(td:text-is('worker'))")
            row.locator(".badge.running").wait_for(timeout=30_000)
            client.containers.run(TINY, ["true"], name="migrate", detach=True)
            page.locator("tr:has(td:text-is('migrate')) .badge.exited").wait_for(timeout=30_000)
            page.screenshot(path=str(DOCS / "machine.png"), full_page=True)
            container.stop(timeout=0)
            row.locator(".badge.exited").wait_for(timeout=30_000)
        finally:
            client.close()

        # Restart it from the list: its state goes round, the row shows the progress. (Beside
        # it, the test engine itself attached by URL, for the screenshot.)
        page.goto(f"{base_url}/")
        local = make_machine(
            "none", name="local", engine_url=engine_url, state=Machine.State.RUNNING
        )
        # Added behind the page's back: it appears once the runner has watched its engine.
        page.locator(f"#machine-{local.pk} td:text-is('{machine.docker_version}')").wait_for(
            timeout=30_000
        )
        row = page.locator(f"#machine-{machine.pk}")
        row.locator(".badge.running").wait_for()
        row.locator("button", has_text="Restart").click()
        row.locator(".badge.starting").wait_for(timeout=30_000)
        row.locator(".progress:has-text('restart')").wait_for()
        table = page.locator("table.machines").bounding_box()
        page.screenshot(
            path=str(DOCS / "machines.png"),
            clip={"x": 0, "y": 0, "width": 1366, "height": table["y"] + table["height"] + 16},
        )
        row.locator(".badge.running").wait_for(timeout=PROVISIONING)
        wait_until(
            lambda: not Operation.objects.filter(machine=machine, status__in=Operation.ACTIVE),
            timeout=120,
        )
        row.locator(".progress").wait_for(state="detached")
        assert Operation.objects.filter(machine=machine, kind="restart").get().status == "succeeded"
    finally:
        process.close()
