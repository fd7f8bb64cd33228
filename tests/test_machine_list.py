"""The machine list at scale: search, filters, sort and pages on the server with the query in
the URL, a socket per view that pushes only its rows, and counts per state."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse
from django.utils import timezone

from machines import live
from machines.models import Container, Driver, Machine

from .sockets import connect

LIST = reverse("machines:list")


def _driver(kind: str) -> Driver:
    return Driver.objects.get_or_create(name=kind, defaults={"kind": kind})[0]


def _fleet(count: int, **fields) -> list[Machine]:
    none = _driver("none")
    return Machine.objects.bulk_create(
        Machine(
            name=f"node-{i:03d}",
            driver=none,
            engine_url="unix:///run/docker.sock",
            state=Machine.State.RUNNING,
            last_checked=timezone.now(),
            **fields,
        )
        for i in range(count)
    )


def _names(html: str) -> list[str]:
    return re.findall(r'<a class="strong" href="/machines/([^/]+)/">', html)


@pytest.mark.django_db
def test_search_finds_machines_by_name_driver_state_tag_and_error(viewer_client):
    none, generic = _driver("none"), _driver("generic")
    Machine.objects.create(name="web-1", driver=generic, state="running", tags={"env": "prod"})
    Machine.objects.create(name="web-2", driver=generic, state="stopped", tags={"env": "test"})
    Machine.objects.create(
        name="db-1",
        driver=none,
        state="error",
        last_error="The engine at 10.0.0.5:2376 refused the connection.",
    )

    def found(query: str) -> list[str]:
        return _names(viewer_client.get(LIST + query).content.decode())

    assert found("?q=web") == ["web-1", "web-2"]
    assert found("?q=generic") == ["web-1", "web-2"]
    assert found("?q=STOPPED") == ["web-2"]
    assert found("?q=refused") == ["db-1"]
    assert found("?q=prod") == ["web-1"]
    assert found("?q=env%3Dtest") == ["web-2"]
    assert found("?q=web+prod") == ["web-1"]  # every word must match
    assert found("?tag=env%3Dprod") == ["web-1"]
    assert found("?tag=env") == ["web-1", "web-2"]
    assert found("?state=error") == ["db-1"]
    assert found("?driver=none") == ["db-1"]
    assert found("?q=nothing-like-it") == []
    assert "No machine matches this filter" in viewer_client.get(LIST + "?q=zzz").content.decode()


@pytest.mark.django_db
def test_a_tag_filter_that_is_not_a_tag_says_why(viewer_client):
    _fleet(2)
    page = viewer_client.get(LIST + "?tag=%3Bdrop").content.decode()
    assert "is not a tag" in page
    assert _names(page) == ["node-000", "node-001"]


@pytest.mark.django_db
def test_a_thousand_machines_come_fifty_a_page_sorted_with_the_query_in_links(viewer_client):
    _fleet(120)
    Machine.objects.filter(name__in=["node-007", "node-100"]).update(state="stopped")
    first = viewer_client.get(LIST).content.decode()
    assert _names(first) == [f"node-{i:03d}" for i in range(50)]
    assert "1\u201350 of 120" in first and "page 1 of 3" in first
    assert 'href="?page=2"' in first
    last = viewer_client.get(LIST + "?page=3").content.decode()
    assert _names(last) == [f"node-{i:03d}" for i in range(100, 120)]
    backwards = viewer_client.get(LIST + "?sort=-name").content.decode()
    assert _names(backwards)[:2] == ["node-119", "node-118"]
    by_state = viewer_client.get(LIST + "?sort=state&q=node-1").content.decode()
    assert _names(by_state)[0] == "node-101" and _names(by_state)[-1] == "node-100"
    # A filter keeps itself in the links to other pages (bookmarkable, shareable).
    running = viewer_client.get(LIST + "?state=running&page=2").content.decode()
    assert "51\u2013100 of 118" in running
    assert 'href="?state=running&amp;page=3"' in running
    assert "node-007" not in _names(running)
    # Counts per state, over the whole fleet.
    assert "Running</span> <strong>118</strong>" in first
    assert "Stopped</span> <strong>2</strong>" in first


@pytest.mark.django_db
def test_the_filter_asks_for_the_list_alone_and_its_socket_follows_the_filter(viewer_client):
    _fleet(3, tags={"role": "db"})
    response = viewer_client.get(
        LIST + "?q=node-001&tag=role%3Ddb",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="machine-list",
    )
    body = response.content.decode()
    assert body.startswith('<div id="machine-list"') and "<html" not in body
    assert 'ws-connect="/ws/machines/?q=node-001&amp;tag=role%3Ddb"' in body
    assert _names(body) == ["node-001"]


@pytest.mark.django_db
def test_operators_see_a_selection_box_per_row_and_viewers_do_not(viewer_client, operator_client):
    _fleet(2)
    assert 'name="machine"' not in viewer_client.get(LIST).content.decode()
    assert operator_client.get(LIST).content.decode().count('name="machine"') == 2


@pytest.mark.django_db(transaction=True)
async def test_a_filtered_socket_pushes_only_its_rows_and_the_counts(viewer):
    machines = await sync_to_async(_fleet)(60)
    socket = await connect(viewer, "/ws/machines/?q=node-0")  # node-000 .. node-049: a full page
    snapshot = await socket.receive_from()
    assert 'id="machine-rows"' in snapshot and len(_names(snapshot)) == 50
    assert 'id="machine-counts"' in await socket.receive_from()

    async def changed(machine: Machine, **fields) -> None:
        for key, value in fields.items():
            setattr(machine, key, value)
        await sync_to_async(machine.save)()
        await sync_to_async(live.machine_changed)(machine)

    # A row it shows: replaced; counts follow the state.
    await changed(machines[3], state="stopped")
    assert (await socket.receive_from()).startswith(f'<tr id="machine-{machines[3].pk}"')
    assert "Stopped</span> <strong>1</strong>" in await socket.receive_from()
    # A machine outside its view (node-055 is on no page of this filter): only the counts.
    await changed(machines[55], state="stopped")
    assert "Stopped</span> <strong>2</strong>" in await socket.receive_from()
    assert await socket.receive_nothing(timeout=0.3)
    # A change while its state stays: nothing for rows this page does not show.
    await changed(machines[55], docker_version="29.0.0")
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()

    stopped = await connect(viewer, "/ws/machines/?state=stopped")
    assert _names(await stopped.receive_from()) == ["node-003", "node-055"]
    await stopped.receive_from()
    # One joins the view while the page has room: inserted; one leaves it: removed.
    await changed(machines[10], state="stopped")
    inserted = await stopped.receive_from()
    assert inserted.startswith('<tbody hx-swap-oob="beforeend:#machine-rows">')
    await stopped.receive_from()  # counts
    await changed(machines[3], state="running")
    assert await stopped.receive_from() == (
        f'<tr id="machine-{machines[3].pk}" hx-swap-oob="delete"></tr>'
    )
    await stopped.disconnect()


@pytest.mark.django_db
def test_the_containers_page_filters_by_machine_tag_and_driver_and_pages(viewer_client):
    prod = Machine.objects.create(
        name="prod-1", driver=_driver("none"), state="running", tags={"env": "prod"}
    )
    lab = Machine.objects.create(name="lab-1", driver=_driver("generic"), state="running")
    for machine, count in ((prod, 3), (lab, 120)):
        Container.objects.bulk_create(
            Container(
                machine=machine,
                container_id=f"{machine.name}-{i:03d}",
                name=f"{machine.name}-c{i:03d}",
                image="nginx",
                state="running",
                created=timezone.now(),
            )
            for i in range(count)
        )
    fleet = reverse("machines:fleet")
    tagged = viewer_client.get(fleet + "?tag=env%3Dprod&sort=name").content.decode()
    assert re.findall(r">(prod-1-c\d+)<", tagged) == ["prod-1-c000", "prod-1-c001", "prod-1-c002"]
    assert "lab-1-c" not in tagged
    by_driver = viewer_client.get(fleet + "?driver=generic").content.decode()
    assert "prod-1-c" not in by_driver and "1\u2013100 of 120" in by_driver
    assert 'href="?driver=generic&amp;page=2"' in by_driver
    assert 'ws-connect="/ws/containers/?driver=generic"' in by_driver
