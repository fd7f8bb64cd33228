"""Inside real container machines, in a real browser (Chromium, Playwright) against
`manage.py serve`: terminals (a container's, the host's) and who gets them, live stats,
an image pull from the fleet's registry with its progress, a prune and what it reclaimed,
and the audit log of all of it."""

from __future__ import annotations

import csv
import io
import re

import pytest

from machines.models import AuditEntry

from .browser import log_in, serve
from .helpers import process_env, run
from .inside import run_in
from .registry import sample_layers

pytestmark = [pytest.mark.browser, pytest.mark.engine]
# Long enough for the runner to lease the machine and connect its watcher.
LIVE = 30_000


@pytest.fixture
def dashboard(transactional_db):
    """The dashboard, started after the machines a test asks for first (its runner would
    otherwise claim their create operation from the fixture)."""
    process, base_url = serve()
    yield base_url
    process.close()


def page_for(browser, base_url: str, user, **viewport):
    page = browser.new_page(viewport=viewport or {"width": 1366, "height": 860})
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, base_url, user.username, f"{user.username}-pw-1234")
    return page


def row(page, name: str):
    return page.locator(f"tr:has(td:text-is('{name}'))")


def screen(page) -> str:
    return page.locator("#terminal-panel .xterm-rows").inner_text()


def open_terminal(page, button) -> None:
    button.click()
    page.wait_for_selector("#terminal-panel [data-terminal-status]:text-is('connected')")
    page.locator("#terminal-panel .xterm").click()


def wait_for_screen(page, text: str) -> None:
    try:
        page.wait_for_function(
            "t => document.querySelector('#terminal-panel .xterm-rows').innerText.includes(t)",
            arg=text,
        )
    except Exception:
        print(repr(screen(page)), terminal_size(page))
        raise


def terminal_size(page) -> tuple[int, int]:
    return tuple(
        page.evaluate(
            "() => { const t = document.querySelector('[data-terminal]').dockerdashTerminal.term;"
            " return [t.rows, t.cols]; }"
        )
    )


SOCKET_OPENS = """path => new Promise(resolve => {
  const ws = new WebSocket(`ws://${location.host}${path}`);
  ws.onopen = () => { ws.close(); resolve("opened"); };
  ws.onclose = (e) => resolve(`refused ${e.code}`);
})"""


def test_terminals_in_a_container_and_on_the_host_by_role(
    browser, running_machine, dashboard, operator, viewer, admin_user
):
    box = run_in(running_machine, "sleep 600")
    url = f"{dashboard}/machines/{running_machine.name}/"
    page = page_for(browser, dashboard, operator)
    page.goto(url)
    row(page, box.name).locator(".badge.running").wait_for(timeout=LIVE)

    open_terminal(page, row(page, box.name).locator("button", has_text="Terminal"))
    page.keyboard.type("echo caf\u00e9-$((6*7))\n")
    wait_for_screen(page, "café-42")
    rows, cols = terminal_size(page)
    page.keyboard.type("stty size\n")
    wait_for_screen(page, f"{rows} {cols}")

    # A narrower window: the terminal fits itself and the process learns its new size.
    page.set_viewport_size({"width": 900, "height": 860})
    page.wait_for_function(
        f"document.querySelector('[data-terminal]').dockerdashTerminal.term.cols < {cols}"
    )
    rows, narrower = terminal_size(page)
    page.keyboard.type("clear; stty size\n")
    wait_for_screen(page, f"{rows} {narrower}")

    page.keyboard.type("exit\n")
    page.wait_for_selector(
        "#terminal-panel [data-terminal-status]:text-is('The process exited with status 0.')"
    )

    # A viewer sees no terminal button, and the terminal's socket refuses them.
    reader = page_for(browser, dashboard, viewer)
    reader.goto(url)
    row(reader, box.name).locator(".badge.running").wait_for(timeout=LIVE)
    assert row(reader, box.name).locator("button").count() == 0
    assert reader.locator("text=Root shell").count() == 0
    path = f"/ws/machines/{running_machine.pk}/containers/{box.id}/terminal/"
    assert reader.evaluate(SOCKET_OPENS, path) == "refused 1006"
    assert page.evaluate(SOCKET_OPENS, path) == "opened"
    assert page.evaluate(SOCKET_OPENS, f"/ws/machines/{running_machine.pk}/shell/") == (
        "refused 1006"
    )

    # An admin gets a root shell on the host itself, over its pinned SSH connection.
    admin = page_for(browser, dashboard, admin_user)
    admin.goto(url)
    open_terminal(admin, admin.locator("button", has_text="Root shell"))
    admin.keyboard.type("echo uid=$(id -u) on $(hostname)\n")
    wait_for_screen(admin, f"uid=0 on {running_machine.name}")


def test_stats_appear_and_change_while_a_container_burns_cpu(
    browser, running_machine, dashboard, viewer
):
    burner = run_in(running_machine, "while :; do :; done")
    page = page_for(browser, dashboard, viewer)
    page.goto(f"{dashboard}/machines/{running_machine.name}/")
    row(page, burner.name).locator(".badge.running").wait_for(timeout=LIVE)
    cell = "#" + row(page, burner.name).locator("td.stats").get_attribute("id")
    page.wait_for_function(
        "cell => /^[0-9.]+ %$/.test(document.querySelector(cell + ' .cpu')?.textContent)",
        arg=cell,
        timeout=LIVE,
    )
    first = page.locator(cell).inner_html()
    assert float(page.locator(f"{cell} .cpu").inner_text().split()[0]) > 5
    assert "<polyline points=" in first
    # Live: each push adds to the sparkline and the figures.
    page.wait_for_function(
        "([cell, before]) => document.querySelector(cell).innerHTML !== before",
        arg=[cell, first],
    )
    assert re.fullmatch(r"[\d.]+ (B|KiB|MiB)", page.locator(f"{cell} .mem").inner_text())

    # Its panel: CPU, memory, network and block I/O.
    row(page, burner.name).locator(f"td:text-is('{burner.name}')").click()
    panel = page.locator("#container-panel")
    panel.locator(".stats-panel .cpu").wait_for(timeout=LIVE)
    for label in ("CPU", "Memory", "Network I/O", "Block I/O", "Processes"):
        assert panel.locator(f"dt:text-is('{label}')").count() == 1

    # The machine's row: the host's CPU, memory and disk (over SSH, from the health checks).
    page.goto(f"{dashboard}/")
    page.locator(f"#machine-{running_machine.pk} .host-cpu").wait_for(timeout=LIVE)
    assert re.fullmatch(
        r"CPU [\d.]+ % · mem \d+ % · disk \d+ %",
        page.locator(f"#machine-{running_machine.pk} .host-usage").inner_text(),
    )


def test_a_pull_streams_its_layers_and_a_prune_says_what_it_reclaimed(
    browser, registry_machine, registry, dashboard, operator
):
    reference = registry.push("shop/app", "1", sample_layers())
    page = page_for(browser, dashboard, operator)
    page.goto(f"{dashboard}/machines/{registry_machine.name}/engine/")
    page.wait_for_selector("#engine-images[data-live=synced]", state="attached", timeout=LIVE)
    # Every state the pull's panel goes through, as the page shows it.
    page.evaluate(
        """() => { window.pullStates = [];
          new MutationObserver(() => {
            const p = document.querySelector('#pulls .pull-progress');
            if (p) window.pullStates.push(p.innerText);
          }).observe(document.getElementById('pulls'), {subtree: true, childList: true}); }"""
    )
    page.fill("input[name=image]", reference)
    page.click("button:text-is('Pull')")
    page.wait_for_selector(f"#engine-notice:has-text('Pulling {reference}')")
    done = page.locator("#pulls .pull-progress[data-done=yes]")
    done.wait_for(timeout=LIVE)
    assert f"Pulled {reference}." in done.inner_text()
    layers = done.locator("li").all_inner_texts()
    assert len(layers) == 2 and all("Pull complete" in layer for layer in layers)
    states = page.evaluate("window.pullStates")
    assert len(states) >= 2 and "Pulled" not in states[0]  # streamed, not only its end
    images = page.locator("#engine-images")
    images.locator(f"td:text-is('{reference}')").wait_for(timeout=LIVE)

    # Prune: dangling images only by default (none); then every unused one, ours.
    page.locator("section:has(#engine-images) button", has_text="Prune").click()
    page.wait_for_selector("#prune-dialog:has-text('Nothing to prune.')")
    page.check("#prune-dialog input[name=all]")
    page.wait_for_selector(f"#prune-dialog:has-text('{reference}')")
    would = page.locator("#prune-dialog .would-reclaim").inner_text()
    assert re.search(r"Would reclaim about [\d.]+ MiB", would)
    page.click("#prune-dialog button.danger")
    reclaimed = page.locator("#prune-dialog .reclaimed")
    reclaimed.wait_for()
    assert re.search(r"Removed \d+ images: .*Reclaimed [\d.]+ MiB\.", reclaimed.inner_text())
    images.locator(f"td:text-is('{reference}')").wait_for(state="detached", timeout=LIVE)


def test_the_audit_log_lists_who_did_what_and_exports_it(
    browser, registry_machine, registry, dashboard, operator, admin_user
):
    running_machine = registry_machine
    reference = registry.push("audited/app", "2", sample_layers()[:1])
    box = run_in(running_machine, "sleep 600")
    page = browser.new_page(viewport={"width": 1366, "height": 860})
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{dashboard}/accounts/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "not-the-password")
    page.click("button.primary")
    page.wait_for_selector(".errorlist, .error")
    log_in(page, dashboard, "operator", "operator-pw-1234")
    page.goto(f"{dashboard}/machines/{running_machine.name}/")
    row(page, box.name).locator(".badge.running").wait_for(timeout=LIVE)
    open_terminal(page, row(page, box.name).locator("button", has_text="Terminal"))
    page.keyboard.type("echo hush-hush\n")
    wait_for_screen(page, "hush-hush")
    page.click("#terminal-panel button.close")
    row(page, box.name).locator("button", has_text="Stop").click()
    row(page, box.name).locator(".badge.exited").wait_for(timeout=LIVE)
    link = page.locator("a:text-is('Client certificates (zip)')").get_attribute("href")
    bundle = page.request.get(dashboard + link)
    assert bundle.status == 200 and bundle.headers["content-type"] == "application/zip"
    page.goto(f"{dashboard}/machines/{running_machine.name}/engine/")
    page.fill("input[name=image]", reference)
    page.click("button:text-is('Pull')")
    page.locator("#pulls .pull-progress[data-done=yes]").wait_for(timeout=LIVE)
    # And from the command line, as whoever runs it.
    run(".venv/bin/python manage.py machine stop " + running_machine.name, process_env())

    admin = page_for(browser, dashboard, admin_user)
    admin.goto(f"{dashboard}/audit/")
    text = admin.locator("table.audit").inner_text()
    for expected in (
        "operator\tFailed login login failed",
        "operator\tLogin logged in",
        f"operator\tTerminal session exec shell\t{running_machine.name}\t{box.name}",
        f"operator\tContainer action stop\t{running_machine.name}\t{box.name}",
        f"operator\tCertificate download downloaded client certificates\t{running_machine.name}",
        f"operator\tImage, volume or network pull image\t{running_machine.name}\t{reference}",
        f"cli\tOperation stop succeeded\t{running_machine.name}",
    ):
        assert expected in text, expected
    assert "hush-hush" not in text

    admin.fill("input[name=who]", "operator")
    admin.select_option("select[name=action]", "terminal")
    admin.click("button:text-is('Filter')")
    admin.wait_for_url("**/audit/?*who=operator*")
    assert admin.locator("table.audit tbody tr").count() == 1
    export = admin.request.get(
        dashboard + admin.locator("a:text-is('Export CSV')").get_attribute("href")
    )
    rows = list(csv.reader(io.StringIO(export.text())))
    assert [(r[1], r[4], r[5], r[7]) for r in rows[1:]] == [
        ("operator", "terminal", "exec shell", box.name)
    ]
    assert float(rows[1][9]) >= 0
    assert AuditEntry.objects.filter(action="terminal", ended_at__isnull=False).count() == 1
