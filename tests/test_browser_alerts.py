"""History charts and alerts in a real browser, from a real container machine watched by the
dashboard's own runner (`manage.py serve`): the chart fills in live, the container panel has
its own, a killed container lights the header badge without a reload. Also makes the
README's screenshots (docs/alerts-chart.png, docs/alert-rules.png)."""

from __future__ import annotations

import pytest

from machines.engine import clients
from tests.browser import log_in, serve
from tests.helpers import ROOT, process_env
from tests.inside import run_in

pytestmark = [pytest.mark.browser, pytest.mark.engine]
DOCS = ROOT / "docs"


def _points(page, selector: str) -> int:
    return int(page.get_attribute(selector, "data-points") or 0)


def test_charts_fill_in_live_and_the_badge_lights_up(browser, admin_user, running_machine):
    machine = running_machine
    # Something to see: a container busy on one core.
    burner = run_in(machine, "while :; do :; done", name="burner")
    env = process_env(
        DOCKERDASH_HEALTH_CHECK_INTERVAL="1",
        DOCKERDASH_HOST_USAGE_INTERVAL="1",
        DOCKERDASH_ALERT_CHECK_INTERVAL="1",
    )
    process, base_url = serve(env=env)
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        log_in(page, base_url, "admin", "admin-pw-1234")
        page.goto(f"{base_url}/machines/{machine.name}/")
        chart = "#chart-machine [data-chart]"
        page.locator(f"{chart} .uplot").wait_for(timeout=30_000)
        page.locator("#chart-machine button", has_text="1h").click()
        page.locator("#chart-machine button[aria-pressed='true']", has_text="1h").wait_for()
        page.locator(f"{chart} .uplot").wait_for()
        # Live: points arrive over the socket, no reload.
        first = _points(page, chart)
        page.wait_for_function(
            f"document.querySelector({chart!r}).dataset.points >= {first + 5}", timeout=60_000
        )
        # The container panel has the container's own history.
        page.locator(f"#containers-{machine.pk} td", has_text="burner").click()
        page.locator("#chart-burner [data-chart] .uplot").wait_for(timeout=30_000)
        page.wait_for_function(
            "document.querySelector('#chart-burner [data-chart]').dataset.points >= 3",
            timeout=60_000,
        )
        page.locator("#chart-machine").screenshot(path=str(DOCS / "alerts-chart.png"))

        # A container killed: the header badge shows it, live.
        assert page.locator("#alert-badge .count").count() == 0
        client = clients.client_for_machine(machine, timeout=30)
        try:
            client.containers.get(burner.id).kill()
        finally:
            client.close()
        page.locator("#alert-badge .count", has_text="1").wait_for(timeout=15_000)
        page.click("#alert-badge")
        page.locator("#open-alerts", has_text="burner exited with code 137").wait_for()

        page.goto(f"{base_url}/alerts/rules/")
        table = page.locator("#alert-rules").bounding_box()
        page.screenshot(
            path=str(DOCS / "alert-rules.png"),
            clip={"x": 0, "y": 0, "width": 1366, "height": table["y"] + table["height"] + 16},
        )
    finally:
        process.kill()
