"""The fleet in a real browser: search and a tag filter that put their query in the URL, a
bulk restart of five real hosts followed on its summary, and a viewer who never sees the
bulk controls. Chromium (Playwright) against `manage.py serve` (daphne and the runner)."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.models import BulkAction, Driver, Machine

from .browser import log_in, serve

pytestmark = [pytest.mark.browser, pytest.mark.engine]


def page_for(browser, base_url: str, user):
    page = browser.new_page(viewport={"width": 1366, "height": 860})
    log_in(page, base_url, user.username, f"{user.username}-pw-1234")
    return page


@pytest.fixture
def dashboard(transactional_db):
    process, base_url = serve()
    yield base_url
    process.close()


def _attached(names: list[str], **tags: str) -> None:
    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    for name in names:
        Machine.objects.create(
            name=name,
            driver=none,
            engine_url="unix:///run/dockerdash-nowhere.sock",
            state="running",
            last_checked=timezone.now(),
            tags=tags,
        )


def _shown(page) -> list[str]:
    return page.locator("#machine-rows a.strong").all_inner_texts()


def test_search_and_tag_filter_with_the_query_in_the_url(browser, dashboard, viewer):
    _attached(["web-a", "web-b"], env="prod")
    _attached(["db-a"], env="test")
    page = page_for(browser, dashboard, viewer)
    page.wait_for_selector("#machine-rows tr")
    assert sorted(_shown(page)) == ["db-a", "web-a", "web-b"]

    page.fill("input[name=q]", "web")
    page.wait_for_url(f"{dashboard}/?q=web")
    page.wait_for_function("document.querySelectorAll('#machine-rows tr').length === 2")
    assert sorted(_shown(page)) == ["web-a", "web-b"]

    page.fill("input[name=q]", "")
    page.fill("input[name=tag]", "env=test")
    page.wait_for_url(f"{dashboard}/?tag=env%3Dtest")
    page.wait_for_function("document.querySelectorAll('#machine-rows tr').length === 1")
    assert _shown(page) == ["db-a"]
    # Bookmarkable: the same URL in a new page gives the same view.
    again = page_for(browser, dashboard, viewer)
    again.goto(f"{dashboard}/?tag=env%3Dtest")
    assert _shown(again) == ["db-a"]
    # A viewer never sees the bulk controls, nor a box to tick.
    assert again.locator("#bulk-form").count() == 0
    assert again.locator("input[name=machine]").count() == 0


@pytest.fixture
def five_hosts(container_driver, parent, host_images):
    """Five real hosts (containers booting systemd and sshd), tagged with one batch."""
    from machines.lib.ssh import generate_key

    batch = uuid.uuid4().hex[:6]
    key, _ = generate_key()
    machines = []
    for i in range(5):
        machine = Machine.objects.create(
            name=f"bulk-{batch}-{i}",
            driver=container_driver,
            driver_options={"image": BARE_HOST_IMAGE},
            ssh_private_key=key,
            tags={"batch": batch},
        )
        machines.append(machine)
        container_driver.get_driver().create(machine, log=lambda _: None)
        machine.observe()
    yield batch, machines
    for machine in machines:
        container_driver.get_driver().remove(machine)


def test_a_bulk_restart_of_five_hosts_with_its_summary(browser, five_hosts, operator):
    batch, machines = five_hosts
    process, base_url = serve()
    try:
        page = page_for(browser, base_url, operator)
        page.goto(f"{base_url}/?tag=batch%3D{batch}")
        page.wait_for_function("document.querySelectorAll('#machine-rows tr').length === 5")
        page.check("[data-select-all]")
        assert page.locator("input[name=machine]:checked").count() == 5
        page.select_option("select[name=action]", "restart")
        page.select_option("select[name=scope]", "selected")
        page.click("#bulk-form button.primary")
        page.wait_for_url(f"{base_url}/bulk/*/")
        summary = page.locator(".bulk-summary")
        summary.locator("text=finished").wait_for(timeout=120_000)
        assert "5 done" in summary.inner_text() and "0 failed" in summary.inner_text()
        # Each line links to its machine's log.
        links = page.locator("#bulk-ops a").evaluate_all("links => links.map(a => a.href)")
        bulk = BulkAction.objects.get()
        ops = {op.machine_name: op.pk for op in bulk.operations.all()}
        assert sorted(links) == sorted(
            f"{base_url}/machines/{name}/#operation-{pk}" for name, pk in ops.items()
        )
    finally:
        process.close()
    for machine in machines:
        machine.refresh_from_db()
        assert machine.state == Machine.State.RUNNING
        assert machine.operations.filter(kind="restart", status="succeeded").count() == 1
