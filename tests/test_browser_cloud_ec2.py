"""An EC2 machine made from the create form in a real browser: the account's regions,
instance types (EC2's API gives no prices, and the form says so) and Debian 12 AMIs come from
its API (moto, whose instances are real fleet hosts), another region brings its own AMIs, and
the log streams to Done."""

from __future__ import annotations

import re
import uuid

import pytest

from machines.models import Driver, Machine

from .browser import log_in, serve
from .cloudfakes.amazonec2 import ACCESS_KEY, SECRET_KEY
from .helpers import process_env

pytestmark = [pytest.mark.browser, pytest.mark.engine]
PROVISIONING = 180_000  # ms


def test_create_an_ec2_instance_from_the_form_with_live_lists_and_watch_it_to_done(
    browser, transactional_db, admin_user, ec2
):
    Driver.objects.create(
        name="aws-test",
        kind="amazonec2",
        settings={"endpoint": ec2.url},
        secrets={"access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
    )
    process, base_url = serve(env=process_env(DOCKERDASH_CLOUD_POLL_INTERVAL="0.2"))
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        log_in(page, base_url, "admin", "admin-pw-1234")
        page.goto(f"{base_url}/machines/new/")
        name = f"ui-ec2-{uuid.uuid4().hex[:6]}"
        page.fill("#id_name", name)
        # Its fields come back before anything else is chosen (else they would replace those).
        with page.expect_response(lambda r: "/driver-fields/?driver=" in r.url, timeout=30_000):
            page.select_option("#id_driver", label="aws-test (amazonec2)")

        page.locator("select#id_opt-region").wait_for(timeout=30_000)
        assert page.input_value("#id_opt-region") == "us-east-1"
        assert page.input_value("#id_opt-instance_type") == "t2.micro"
        assert page.input_value("#id_opt-ami") == ec2.debian_ami("us-east-1")
        chosen = page.locator("#id_opt-instance_type option:checked").inner_text()
        assert chosen == "t2.micro: 1 vCPU, 1 GB, 16 GB disk, price not given by the API"

        # Another region: its own Debian 12 AMIs replace the others.
        page.select_option("#id_opt-region", "eu-central-1")
        there = ec2.debian_ami("eu-central-1")
        page.locator(f"#id_opt-ami option[value='{there}']").wait_for(
            state="attached", timeout=30_000
        )
        assert page.input_value("#id_opt-ami") == there
        assert page.input_value("#id_opt-region") == "eu-central-1"

        page.click("button.primary")
        page.wait_for_url(f"{base_url}/machines/{name}/")
        op_id = int(re.search(r'id="operation-(\d+)"', page.content())[1])
        page.wait_for_selector(f"#log-{op_id} li:has-text('Done')", timeout=PROVISIONING)
        page.wait_for_selector(f"#operation-head-{op_id} .badge.succeeded")

        machine = Machine.objects.get(name=name)
        assert machine.url == f"tcp://{machine.ip}:2376"
        (instance,) = ec2.instances("eu-central-1").values()
        assert (instance.image_id, instance.instance_type) == (there, "t2.micro")
        assert instance.public_ip == machine.ip
    finally:
        process.close()
