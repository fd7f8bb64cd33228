"""A DigitalOcean machine made from the create form in a real browser: the account's regions,
sizes (with their prices) and images come from its API (the fake, whose droplets are real
fleet hosts), a new region brings the sizes offered there, and the log streams to Done."""

from __future__ import annotations

import re
import uuid

import pytest

from machines.models import Driver, Machine

from .browser import log_in, serve
from .helpers import process_env

pytestmark = [pytest.mark.browser, pytest.mark.engine]
PROVISIONING = 180_000  # ms


@pytest.mark.parametrize("cloud", ["digitalocean"], indirect=True)
def test_create_a_droplet_from_the_form_with_live_lists_and_watch_it_to_done(
    browser, transactional_db, admin_user, cloud
):
    Driver.objects.create(
        name="do-test",
        kind="digitalocean",
        settings={"api_url": cloud.fake.url},
        secrets={"access_token": cloud.token},
    )
    process, base_url = serve(env=process_env(DOCKERDASH_CLOUD_POLL_INTERVAL="0.2"))
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        log_in(page, base_url, "admin", "admin-pw-1234")
        page.goto(f"{base_url}/machines/new/")
        name = f"ui-do-{uuid.uuid4().hex[:6]}"
        page.fill("#id_name", name)
        page.select_option("#id_driver", label="do-test (digitalocean)")

        # The account's own lists, with the defaults chosen and the prices shown.
        page.locator("select#id_opt-region").wait_for()
        assert page.input_value("#id_opt-region") == "nyc3"
        assert page.input_value("#id_opt-size") == "s-1vcpu-1gb"
        assert page.input_value("#id_opt-image") == "debian-12-x64"
        size = page.locator("#id_opt-size option:checked").inner_text()
        assert size == "s-1vcpu-1gb: 1 vCPU, 1 GB, 25 GB disk, $6.00/month"
        assert page.locator("#id_opt-region option[value='sfo2']").count() == 0  # unavailable

        # Another region: the sizes offered there replace the others.
        assert page.locator("#id_opt-size option[value='c-2']").count() == 1
        page.select_option("#id_opt-region", "ams3")
        page.locator("#id_opt-size option[value='c-2']").wait_for(state="detached")
        assert page.locator("#id_opt-size option[value='g-2vcpu-8gb']").count() == 1
        assert page.input_value("#id_opt-region") == "ams3"
        assert page.input_value("#id_opt-size") == "s-1vcpu-1gb"

        page.click("button.primary")
        page.wait_for_url(f"{base_url}/machines/{name}/")
        op_id = int(re.search(r'id="operation-(\d+)"', page.content())[1])
        page.wait_for_selector(f"#log-{op_id} li:has-text('Done')", timeout=PROVISIONING)
        page.wait_for_selector(f"#operation-head-{op_id} .badge.succeeded")

        machine = Machine.objects.get(name=name)
        assert machine.url == f"tcp://{machine.ip}:2376"
        (droplet,) = cloud.fake.droplets.values()
        assert (droplet["region"]["slug"], droplet["size_slug"]) == ("ams3", "s-1vcpu-1gb")
        assert droplet["networks"]["v4"][1]["ip_address"] == machine.ip
    finally:
        process.close()
