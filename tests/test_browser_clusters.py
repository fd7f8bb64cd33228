"""Clusters and stacks in a real browser against `manage.py serve` and three real container
machines: the cluster made from the page, its nodes live; a stack written in the form,
its diff reviewed, deployed; its port answering on every node; scaled 3 -> 6 live; a
worker stopped and the page following; an invalid compose file refused in the CLI's words."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from machines.models import Cluster, Stack
from machines.services import machines as machine_service
from machines.services import stacks

from .browser import log_in, serve
from .swarmfleet import STACK, answers, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.engine]
LIVE = 30_000
SCREENSHOT = Path(__file__).parent.parent / "docs" / "clusters.png"


@pytest.fixture
def dashboard(transactional_db, three_machines):
    process, base_url = serve()
    yield base_url
    process.close()


def page_for(browser, base_url: str, user):
    page = browser.new_page(viewport={"width": 1366, "height": 1000})
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, base_url, user.username, f"{user.username}-pw-1234")
    return page


def running_nodes(page, service: str) -> list[str]:
    rows = page.locator(f"#service-{service} tr.task[data-state=running][data-desired=running]")
    return [rows.nth(i).get_attribute("data-node") for i in range(rows.count())]


def test_a_cluster_and_a_stack_from_the_pages(
    browser, dashboard, three_machines, web_images, operator
):
    m1, m2, m3 = three_machines
    page = page_for(browser, dashboard, operator)
    page.goto(f"{dashboard}/clusters/")
    page.fill("#id_name", "demo")
    page.select_option("#id_machines", [m.name for m in three_machines])
    page.click("button:text-is('Create cluster')")
    page.wait_for_url(f"{dashboard}/clusters/demo/")
    page.locator("#cluster-nodes tr[data-state=ready]").nth(2).wait_for(timeout=180_000)
    rows = page.locator("#cluster-nodes tbody tr").all_inner_texts()
    assert "manager (leader)" in rows[0] and m1.name in rows[0]
    assert all("worker" in r for r in rows[1:]), rows

    # A stack: the form, a refused compose file first (the CLI's own words).
    page.click("a:text-is('New stack')")
    page.fill("#id_name", "shop")
    page.fill("#id_compose", "services:\n  web:\n    image: x\n    replicas: 3\n")
    page.click("button:text-is('Save')")
    error = page.locator("#stack-form .errorlist, #stack-form .error").first
    error.wait_for()
    assert "Additional property replicas is not allowed" in error.inner_text()
    page.fill("#id_compose", STACK)
    page.fill(
        "#id_env_text",
        f"WEB_IMAGE={web_images['web1']}\nSLEEPER_IMAGE={web_images['sleeper']}\nMESSAGE=v1",
    )
    page.fill("#id_secret_text", "API_KEY=s3cret-value")
    page.fill("#id_update_delay", "3")
    page.click("button:text-is('Save')")
    page.wait_for_url(f"{dashboard}/clusters/demo/stacks/shop/")
    assert "s3cret-value" not in page.content()
    page.click("button:text-is('Review the changes…')")
    page.wait_for_selector("#stack-diff:has-text('shop_web: new')")
    page.click("#stack-diff button:text-is('Deploy')")
    page.locator("#service-shop_worker[data-running='3']").wait_for(timeout=180_000)
    for machine in three_machines:
        wait_for(lambda m=machine: answers(m.ip, 8081).startswith("v1 from"), what=machine.name)

    # The web service's log, every task's, live: each answer above printed "served".
    page.select_option("form.logs select[name=service]", "shop_web")
    page.click("form.logs button:text-is('Follow logs')")
    page.locator("#container-log li", has_text="listening").first.wait_for(timeout=LIVE)
    before = page.locator("#container-log li", has_text="served").count()
    answers(m2.ip, 8081)
    wait_for(lambda: page.locator("#container-log li", has_text="served").count() > before)

    # Scale 3 -> 6: six running tasks over the three nodes, live.
    page.select_option("form.scale select[name=service]", "shop_worker")
    page.fill("form.scale input[name=replicas]", "6")
    page.click("form.scale button:text-is('Scale')")
    page.locator("#service-shop_worker[data-running='6']").wait_for(timeout=LIVE)
    assert set(running_nodes(page, "shop_worker")) == {m1.name, m2.name, m3.name}
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # A worker stopped: the page shows its tasks elsewhere.
    machine_service.request_action(None, m3, "stop")
    stopped = time.monotonic()
    cluster = Cluster.objects.get(name="demo")
    stack = Stack.objects.get(cluster=cluster, name="shop")

    def swarm_says() -> bool:
        tasks = stacks.state(stack)["services"]
        worker = next(s for s in tasks if s["name"] == "shop_worker")
        nodes = [t["node"] for t in worker["tasks"] if t["state"] == t["desired"] == "running"]
        return len(nodes) == 6 and m3.name not in nodes

    def moved() -> bool:
        nodes = running_nodes(page, "shop_worker")
        return len(nodes) == 6 and m3.name not in nodes

    wait_for(swarm_says, timeout=180, what="the swarm rescheduling the stopped worker's tasks")
    rescheduled = time.monotonic()
    wait_for(moved, timeout=10, what="the page showing the rescheduled tasks")
    shown = time.monotonic()
    print(
        f"rescheduled by the swarm {rescheduled - stopped:.1f} s after the stop was asked; "
        f"on the page {shown - rescheduled:.1f} s later"
    )
    assert cluster.nodes.count() == 3
