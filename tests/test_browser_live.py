"""The live dashboard in a real browser: Chromium (Playwright) against `manage.py serve`
(daphne + the runner, whose engine watcher follows a real engine).

The machines here attach the test engine itself (`none` driver, a unix socket); other test
runs share that engine, so each test names its containers uniquely and filters its views to
them. The provisioned path (a container machine created through the UI) is in
test_browser_create.py.
"""

from __future__ import annotations

import contextlib
import uuid

import docker.errors
import pytest

from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.models import Machine

from .browser import log_in, serve
from .fleet import make_machine
from .helpers import Process, process_env

pytestmark = [pytest.mark.browser, pytest.mark.engine]
# Long enough for the runner to lease the machine and connect its watcher.
LIVE = 30_000


@pytest.fixture
def engine_machine(transactional_db, engine_url) -> Machine:
    return make_machine(
        "none", name=f"local-{uuid.uuid4().hex[:4]}", engine_url=engine_url, state="running"
    )


@pytest.fixture
def dashboard(engine_machine):
    process, base_url = serve()
    yield base_url
    process.close()


@pytest.fixture
def started(parent, host_images):
    """A factory of containers on the test engine, removed afterwards."""
    made = []

    def run(name: str, command: str = "sleep 600", **kwargs):
        container = parent.containers.run(
            host_images[BARE_HOST_IMAGE],
            ["sh", "-c", command],
            name=name,
            detach=True,
            network_mode="none",
            **kwargs,
        )
        made.append(container)
        return container

    yield run
    for container in made:
        with contextlib.suppress(docker.errors.NotFound):  # the test removed it
            container.remove(force=True)


def page_for(browser, base_url: str, user, *, color_scheme: str = "light"):
    page = browser.new_page(viewport={"width": 1366, "height": 860}, color_scheme=color_scheme)
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, base_url, user.username, f"{user.username}-pw-1234")
    return page


def row(page, name: str):
    return page.locator(f"tr:has(td:text-is('{name}'))")


def test_containers_appear_change_and_disappear_without_reload(
    browser, dashboard, engine_machine, started, parent, operator, viewer
):
    tag = uuid.uuid4().hex[:4]
    url = f"{dashboard}/machines/{engine_machine.name}/?q={tag}"
    watching = page_for(browser, dashboard, operator)
    watching.goto(url)
    watching.wait_for_selector(
        f"#containers-{engine_machine.pk}[data-live=synced]", state="attached"
    )
    reading = page_for(browser, dashboard, viewer)
    reading.goto(url)
    reading.wait_for_selector(
        f"#containers-{engine_machine.pk}[data-live=synced]", state="attached"
    )
    pages = (watching, reading)

    web = started(f"shop-web-{tag}")
    for page in pages:
        row(page, web.name).locator(".badge.running").wait_for(timeout=LIVE)
    # Only operators have buttons, in the rows pushed to them too.
    assert row(watching, web.name).locator("button", has_text="Stop").count() == 1
    assert row(reading, web.name).locator("button").count() == 0

    for change, state in (
        (web.pause, "paused"),
        (web.unpause, "running"),
        (lambda: web.stop(timeout=0), "exited"),
        (web.start, "running"),
        (web.kill, "exited"),
    ):
        change()
        for page in pages:
            row(page, web.name).locator(f".badge.{state}").wait_for(timeout=10_000)

    # Newer ones join at the top, as in `docker ps -a`.
    started(f"shop-db-{tag}")
    started(f"shop-worker-{tag}")
    watching.wait_for_selector(f"tr:has(td:text-is('shop-worker-{tag}'))")
    names = watching.locator(f"#containers-{engine_machine.pk} tr td.strong").all_inner_texts()
    assert names == [f"shop-worker-{tag}", f"shop-db-{tag}", web.name]

    web.remove(force=True)
    for page in pages:
        row(page, web.name).wait_for(state="detached", timeout=10_000)
    # Nothing another test run does on the shared engine entered the filtered view.
    assert all(tag in n for n in reading.locator("tbody tr td.strong").all_inner_texts())


def test_operator_acts_and_follows_a_log_until_the_container_stops(
    browser, dashboard, engine_machine, started, parent, operator
):
    tag = uuid.uuid4().hex[:4]
    name = f"chatty-{tag}"
    script = (
        "trap 'echo bye; exit 0' TERM; i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done"
    )
    container = started(name, script)
    page = page_for(browser, dashboard, operator)
    page.goto(f"{dashboard}/machines/{engine_machine.name}/?q={tag}")
    row(page, name).locator(".badge.running").wait_for(timeout=LIVE)

    row(page, name).locator("button", has_text="Logs").click()
    page.wait_for_selector("#container-log[data-live=synced]")
    page.wait_for_function("document.querySelectorAll('#container-log li').length >= 5")
    seen = page.locator("#container-log li").count()
    page.wait_for_function(f"document.querySelectorAll('#container-log li').length > {seen}")

    # Pausing through the dashboard: the notice, then the row, as the engine tells it.
    row(page, name).locator("button", has_text="Pause").click()
    page.wait_for_selector(f"#container-notice:has-text('Paused {name}.')")
    row(page, name).locator(".badge.paused").wait_for(timeout=10_000)
    row(page, name).locator("button", has_text="Unpause").click()
    row(page, name).locator(".badge.running").wait_for(timeout=10_000)

    # Stopped from outside: the log says it ended, and no line comes after that.
    container.stop(timeout=1)
    page.wait_for_selector(
        "#container-log-status:has-text('The container stopped: the log ends here.')",
        timeout=10_000,
    )
    last = page.locator("#container-log li").last.inner_text()
    assert container.logs(tail=1).decode().strip() == last
    row(page, name).locator(".badge.exited").wait_for(timeout=10_000)

    # Removed through the dashboard (after a confirmation): gone from the table.
    row(page, name).locator("button", has_text="Remove").click()
    row(page, name).wait_for(state="detached", timeout=10_000)
    page.click("#container-log-panel button.close")
    assert page.locator("#container-log-panel").inner_html() == ""


def test_a_dropped_socket_catches_up_when_the_server_returns(
    browser, engine_machine, started, parent, operator
):
    tag = uuid.uuid4().hex[:4]
    process, base_url = serve()
    try:
        page = page_for(browser, base_url, operator)
        page.goto(f"{base_url}/machines/{engine_machine.name}/?q={tag}")
        container = started(f"steady-{tag}")
        row(page, container.name).locator(".badge.running").wait_for(timeout=LIVE)

        # The server dies; meanwhile the container changes.
        process.kill()
        process.close()
        container.pause()
        bind = base_url.removeprefix("http://")
        process = Process(["serve", "--bind", bind], process_env(), ready="dockerdash is serving")
        # htmx reconnects by itself; the snapshot on connect brings what was missed.
        row(page, container.name).locator(".badge.paused").wait_for(timeout=LIVE)
    finally:
        process.close()


def test_fleet_view_searches_every_machine_live(
    browser, dashboard, engine_machine, started, viewer, parent
):
    tag = uuid.uuid4().hex[:4]
    page = page_for(browser, dashboard, viewer, color_scheme="dark")
    page.goto(f"{dashboard}/containers/")
    started(f"alpha-{tag}")
    started(f"beta-{tag}")
    page.wait_for_selector(f"tr:has(td:text-is('beta-{tag}'))", timeout=LIVE)

    page.fill("input[name=q]", f"alpha-{tag}")
    page.wait_for_url(f"**/containers/?q=alpha-{tag}*")
    row(page, f"beta-{tag}").wait_for(state="detached")
    assert row(page, f"alpha-{tag}").count() == 1
    assert engine_machine.name in row(page, f"alpha-{tag}").inner_text()
    # Live within the search: a match appears, others do not.
    started(f"alpha-{tag}-2")
    started(f"gamma-{tag}")
    row(page, f"alpha-{tag}-2").wait_for(timeout=10_000)
    page.wait_for_timeout(1000)
    assert row(page, f"gamma-{tag}").count() == 0
    # By state too.
    page.select_option("select[name=state]", "exited")
    page.wait_for_selector("text=No container matches.")
