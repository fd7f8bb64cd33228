"""The websockets, one consumer at a time (WebsocketCommunicator): snapshots, rows inserted,
replaced and deleted as the page needs them, roles, filters, keepalive, and log streams
from a real engine."""

from __future__ import annotations

import asyncio
import collections
import os
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.core.exceptions import SynchronousOnlyOperation
from django.utils import timezone

from machines import live
from machines.models import Container, Machine, Operation, OperationLogLine
from machines.sockets import base as sockets_base
from machines.sockets import machines as consumers

from .fleet import make_machine
from .sockets import connect, follower_of, refused

pytestmark = pytest.mark.django_db(transaction=True)


async def nothing_more(communicator: WebsocketCommunicator) -> bool:
    return await communicator.receive_nothing(timeout=0.3)


def _container(machine: Machine, name: str, state: str = "running", **fields) -> Container:
    return Container.objects.create(
        machine=machine,
        container_id=uuid.uuid4().hex * 2,
        name=name,
        image="nginx:1.27",
        state=state,
        status="Up 3 minutes" if state == "running" else "Exited (0) 1 minute ago",
        created=timezone.now(),
        **fields,
    )


# -- the machine list -------------------------------------------------------------------


async def test_list_rows_are_inserted_replaced_and_deleted_per_role(viewer, operator, admin_user):
    first = await sync_to_async(make_machine)("none", name="alpha", state="running")
    sockets = {
        u.username: await connect(u, "/ws/machines/") for u in (viewer, operator, admin_user)
    }
    for socket in sockets.values():
        snapshot = await socket.receive_from()
        assert 'id="machine-rows"' in snapshot and 'data-live="synced"' in snapshot
        assert f'id="machine-{first.pk}"' in snapshot
        assert 'id="machine-counts"' in await socket.receive_from()

    # A machine made elsewhere (the CLI, another page): appended to every open list, and
    # counted.
    second = await sync_to_async(make_machine)("generic", name="beta", state="running")
    await sync_to_async(live.machine_changed)(second)
    inserted = {name: await s.receive_from() for name, s in sockets.items()}
    for html in inserted.values():
        assert html.startswith('<tbody hx-swap-oob="beforeend:#machine-rows">')
        assert f'<tr id="machine-{second.pk}"' in html and 'hx-swap-oob="true"' not in html
    assert "hx-post" not in inserted["viewer"]
    assert "hx-post" in inserted["operator"] and "Remove…" not in inserted["operator"]
    assert "Remove…" in inserted["admin"]
    for socket in sockets.values():
        assert "Running</span> <strong>2</strong>" in await socket.receive_from()

    # The same machine again: now the pages have it, so it replaces itself by id.
    second.state = Machine.State.STOPPED
    await sync_to_async(second.save)()
    await sync_to_async(live.machine_changed)(second)
    for socket in sockets.values():
        html = await socket.receive_from()
        assert html.startswith(f'<tr id="machine-{second.pk}" hx-swap-oob="true"')
        assert "Stopped" in html
        assert "Stopped</span> <strong>1</strong>" in await socket.receive_from()

    await sync_to_async(Machine.objects.filter(pk=first.pk).delete)()
    await sync_to_async(live.machine_removed)(first.pk, "alpha")
    for socket in sockets.values():
        assert (
            await socket.receive_from() == f'<tr id="machine-{first.pk}" hx-swap-oob="delete"></tr>'
        )
        assert "Running</span>" not in await socket.receive_from()
        # Deleted rows are forgotten: a second removal sends nothing.
    await sync_to_async(live.machine_removed)(first.pk, "alpha")
    for socket in sockets.values():
        assert await nothing_more(socket)
        await socket.disconnect()


async def test_an_operation_shows_its_progress_in_the_list_row(operator):
    machine = await sync_to_async(make_machine)("none", name="web-1", state="running")
    socket = await connect(operator, "/ws/machines/")
    await socket.receive_from()
    await socket.receive_from()  # the counts
    op = await sync_to_async(Operation.objects.create)(
        machine=machine,
        machine_name=machine.name,
        kind="restart",
        status="running",
        step=2,
        steps_total=3,
        step_name="Check the host",
    )
    await sync_to_async(live.operation_changed)(op)
    html = await socket.receive_from()
    assert html.startswith(f'<tr id="machine-{machine.pk}" hx-swap-oob="true"')
    assert "restart 2/3…" in html and '<progress max="3" value="2">' in html
    await socket.disconnect()


# -- a machine's page and its operations ---------------------------------------------------


async def test_machine_page_gets_new_operations_and_its_summary(viewer):
    machine = await sync_to_async(make_machine)(
        "none", name="web-1", state="running", engine_info={"os": "Debian GNU/Linux 12", "cpus": 2}
    )
    older = await sync_to_async(Operation.objects.create)(
        machine=machine, machine_name=machine.name, kind="start", status="succeeded"
    )
    socket = await connect(viewer, f"/ws/machines/{machine.pk}/?after={older.pk}")
    snapshot = await socket.receive_from()
    assert 'id="machine-summary"' in snapshot and "Debian GNU/Linux 12" in snapshot
    assert f'id="operation-head-{older.pk}" hx-swap-oob="true"' in snapshot
    assert f'id="operation-{older.pk}"' not in snapshot  # the page has it

    # Requested from the list by someone else: it joins this page's history, its log live.
    op = await sync_to_async(Operation.objects.create)(
        machine=machine, machine_name=machine.name, kind="restart"
    )
    await sync_to_async(live.operation_changed)(op)
    inserted = await socket.receive_from()
    assert inserted.startswith('<div hx-swap-oob="afterbegin:#operations">')
    assert f'ws-connect="/ws/operations/{op.pk}/"' in inserted
    assert f'id="operation-head-{op.pk}"' in await socket.receive_from()
    # Later changes of it are its head only.
    op.status = Operation.Status.RUNNING
    await sync_to_async(op.save)()
    await sync_to_async(live.operation_changed)(op)
    head = await socket.receive_from()
    assert head.startswith(f'<span class="operation-head" id="operation-head-{op.pk}"')
    await socket.disconnect()

    # After a reconnect, operations newer than the page are offered again, only if missing.
    socket = await connect(viewer, f"/ws/machines/{machine.pk}/?after={older.pk}")
    snapshot = await socket.receive_from()
    assert f"afterbegin:#operations:not(:has(#operation-{op.pk}))" in snapshot
    await socket.disconnect()


async def test_a_machine_page_keeps_each_roles_buttons_as_the_machine_changes(admin_user):
    """A global admin keeps Remove and Root shell when the machine changes under the page
    (the push carried the operators' buttons only); a team's admin gets Remove, never the
    buttons that need creating machines (Root shell, Retry create: a 403 for a team role)."""
    from django.test import Client
    from django.urls import reverse

    from .helpers import team_member

    machine = await sync_to_async(make_machine)(
        name="web-1", state="running", tags={"env": "a"}, ip="192.0.2.10",
        ssh_host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE5hTGFxK2VHcmVhdEhvc3RLZXlGb3JUZXN0",
    )  # fmt: skip
    anna = await sync_to_async(team_member)("anna", "admin", "group-a", "env=a")

    def page(user) -> str:
        client = Client()
        client.force_login(user)
        return client.get(reverse("machines:detail", args=[machine.name])).content.decode()

    for user, shell in ((admin_user, True), (anna, False)):
        html = await sync_to_async(page)(user)
        assert "Remove…" in html and ("Root shell" in html) is shell
        socket = await connect(user, f"/ws/machines/{machine.pk}/")
        snapshot = await socket.receive_from()
        assert "Remove…" in snapshot and ("Root shell" in snapshot) is shell
        machine.state = Machine.State.STOPPED if shell else Machine.State.RUNNING
        await sync_to_async(machine.save)()
        await sync_to_async(live.machine_changed)(machine)
        pushed = await socket.receive_from()
        assert 'id="machine-summary"' in pushed
        assert "Remove…" in pushed and ("Root shell" in pushed) is shell, user
        await socket.disconnect()


async def test_operation_log_replays_then_streams_without_duplicates_then_closes(viewer):
    machine = await sync_to_async(make_machine)("none", name="web-1", state="running")
    op = await sync_to_async(Operation.objects.create)(
        machine=machine, machine_name=machine.name, kind="provision", status="running"
    )
    lines = [
        await sync_to_async(OperationLogLine.objects.create)(operation=op, seq=i, text=f"line {i}")
        for i in (1, 2)
    ]
    socket = await connect(viewer, f"/ws/operations/{op.pk}/")
    snapshot = await socket.receive_from()
    assert "line 1" in snapshot and "line 2" in snapshot and 'data-live="synced"' in snapshot
    # A batch already in the snapshot (published while it was taken) is not sent twice.
    await sync_to_async(live.log_lines_added)(op, [lines[1]])
    assert await nothing_more(socket)
    new = await sync_to_async(OperationLogLine.objects.create)(operation=op, seq=3, text="line 3")
    await sync_to_async(live.log_lines_added)(op, [new])
    html = await socket.receive_from()
    assert html.startswith(f'<ol id="log-{op.pk}" hx-swap-oob="beforeend">') and "line 3" in html
    # Finished: the head says so and the socket closes normally (htmx does not reconnect).
    op.status = Operation.Status.SUCCEEDED
    await sync_to_async(op.save)()
    await sync_to_async(live.operation_changed)(op)
    assert "succeeded" in await socket.receive_from()
    assert (await socket.receive_output())["type"] == "websocket.close"


# -- container tables --------------------------------------------------------------------


async def test_container_table_follows_its_filter(viewer, operator):
    machine = await sync_to_async(make_machine)("none", name="web-1", state="running")
    web = await sync_to_async(_container)(machine, "web")
    await sync_to_async(_container)(machine, "batch", state="exited")
    path = f"/ws/machines/{machine.pk}/containers/?state=running"
    socket = await connect(viewer, path)
    snapshot = await socket.receive_from()
    assert snapshot.startswith(f'<tbody id="containers-{machine.pk}" hx-swap-oob="true"')
    assert ">web<" in snapshot and ">batch<" not in snapshot
    assert "hx-post" not in snapshot

    # A new running container enters the view, at the top (newest first, as docker ps).
    api = await sync_to_async(_container)(machine, "api")
    await sync_to_async(live.container_changed)(api)
    html = await socket.receive_from()
    assert html.startswith(f'<tbody hx-swap-oob="afterbegin:#containers-{machine.pk}">')
    assert ">api<" in html
    # web stops: it leaves the "running" view.
    web.state, web.status = "exited", "Exited (0) Less than a second ago"
    await sync_to_async(web.save)()
    await sync_to_async(live.container_changed)(web)
    assert await socket.receive_from() == f'<tr id="container-{web.pk}" hx-swap-oob="delete"></tr>'
    # Changes of containers the view does not show cost nothing.
    await sync_to_async(live.container_changed)(web)
    assert await nothing_more(socket)
    await socket.disconnect()

    # Operators get the action buttons in the same rows.
    socket = await connect(operator, f"/ws/machines/{machine.pk}/containers/")
    snapshot = await socket.receive_from()
    assert (
        "Stop</button>" in snapshot and "Start</button>" in snapshot and "Logs</button>" in snapshot
    )
    await socket.disconnect()


async def test_fleet_socket_shows_every_machine_and_searches_by_machine(viewer):
    a = await sync_to_async(make_machine)("none", name="alpha", state="running")
    b = await sync_to_async(make_machine)("none", name="beta", state="running")
    await sync_to_async(_container)(a, "a-web")
    await sync_to_async(_container)(b, "b-web")
    socket = await connect(viewer, "/ws/containers/?q=BETA")
    snapshot = await socket.receive_from()
    assert snapshot.startswith('<tbody id="fleet-containers"')
    assert ">b-web<" in snapshot and ">a-web<" not in snapshot and ">beta</a>" in snapshot
    new = await sync_to_async(_container)(b, "b-worker")
    await sync_to_async(live.container_changed)(new)
    assert ">b-worker<" in await socket.receive_from()
    other = await sync_to_async(_container)(a, "a-worker")
    await sync_to_async(live.container_changed)(other)
    assert await nothing_more(socket)
    await sync_to_async(live.container_removed)(b.pk, new.pk)
    assert await socket.receive_from() == f'<tr id="container-{new.pk}" hx-swap-oob="delete"></tr>'
    await socket.disconnect()


async def test_a_process_joins_each_group_once_for_all_its_sockets(viewer):
    machine = await sync_to_async(make_machine)("none", name="web-1", state="running")
    await sync_to_async(_container)(machine, "web")
    layer = get_channel_layer()
    group = live.containers_group(machine.pk)
    sockets = [await connect(viewer, f"/ws/machines/{machine.pk}/containers/") for _ in range(3)]
    for socket in sockets:
        await socket.receive_from()
    assert len(layer.groups[group]) == 1
    # One change, one message through the layer, every socket gets it.
    web = await sync_to_async(Container.objects.get)(name="web")
    web.state = "paused"
    await sync_to_async(web.save)()
    await sync_to_async(live.container_changed)(web)
    for socket in sockets:
        assert 'class="cstate-paused"' in await socket.receive_from()
    for socket in sockets[:2]:
        await socket.disconnect()
    assert len(layer.groups[group]) == 1
    await sockets[2].disconnect()
    assert not layer.groups.get(group)


async def test_a_late_failure_of_a_container_action_reaches_its_viewers(viewer):
    machine = await sync_to_async(make_machine)("none", name="web-1", state="running")
    web = await sync_to_async(_container)(machine, "web")
    page = await connect(viewer, f"/ws/machines/{machine.pk}/containers/?q=nothing")
    fleet = await connect(viewer, "/ws/containers/")
    await page.receive_from()
    await fleet.receive_from()
    await sync_to_async(live.container_notice)(web, "Stopping web failed: timed out", error=True)
    for socket in (page, fleet):
        html = await socket.receive_from()
        assert html.startswith('<div id="container-notice" class="notice error" hx-swap-oob="true"')
        assert "Stopping web failed: timed out" in html
        await socket.disconnect()


# -- keepalive and the session ---------------------------------------------------------------


async def test_keepalive_pings_and_a_logout_ends_the_socket(viewer, monkeypatch):
    monkeypatch.setattr(sockets_base, "KEEPALIVE", 0.2)
    socket = await connect(viewer, "/ws/machines/")
    await socket.receive_from()
    await socket.receive_from()  # the counts
    assert await socket.receive_from(timeout=2) == sockets_base.PING
    await sync_to_async(Session.objects.all().delete)()  # logged out everywhere
    closed = await socket.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": sockets_base.CLOSE_FORBIDDEN}


async def test_a_lost_role_ends_the_socket(operator, monkeypatch):
    monkeypatch.setattr(sockets_base, "KEEPALIVE", 0.2)
    machine = await sync_to_async(make_machine)("none", name="web-1", state="running")
    container = await sync_to_async(_container)(machine, "web")
    socket = await connect(
        operator, f"/ws/machines/{machine.pk}/containers/{container.container_id}/logs/"
    )
    await sync_to_async(operator.groups.clear)()
    # The log socket (operators only) closes at the next check.
    while (await socket.receive_output(timeout=3))["type"] != "websocket.close":
        pass
    await socket.disconnect()


# -- the ORM from async code ---------------------------------------------------------------------


async def test_an_orm_call_from_async_code_fails_here_as_it_does_under_daphne():
    """Consumers may touch the ORM only through database_sync_to_async; these tests would
    not notice otherwise if the switch that allows it were on (it is, for browser tests
    only, while their browser lives)."""
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in os.environ
    with pytest.raises(SynchronousOnlyOperation):
        Machine.objects.count()


# -- container logs (a real engine) --------------------------------------------------------------


async def test_container_logs_are_for_operators(viewer, operator):
    machine = await sync_to_async(make_machine)("none", name="web-1", state="running")
    container = await sync_to_async(_container)(machine, "web")
    path = f"/ws/machines/{machine.pk}/containers/{container.container_id}/logs/"
    assert await refused(viewer, path)
    assert await refused(operator, f"/ws/machines/{machine.pk}/containers/nope/logs/")


@pytest.mark.engine
async def test_container_log_follows_then_ends_when_the_container_stops(operator, log_of):
    script = (
        "for i in $(seq 1 300); do echo line $i; done; printf '\\033[31mred\\033[0m\\n'; "
        "sleep 2; echo last"
    )
    _, path = await sync_to_async(log_of)(script)
    await asyncio.sleep(1)  # the 300 lines are written
    socket = await connect(operator, path)
    assert "following" in await socket.receive_from()
    frames = []
    while (out := await socket.receive_output(timeout=15))["type"] != "websocket.close":
        frames.append(out["text"])
    # The last lines first (the tail) in one swap replacing what the panel held, colours
    # stripped; then the lines as they come; then why it ended.
    assert frames[0].startswith(
        '<ol id="container-log" class="log" hx-swap-oob="true" data-live="synced">'
    )
    assert frames[0].count("<li") == consumers.LOG_TAIL
    assert ">line 102<" in frames[0] and ">line 101<" not in frames[0]
    assert ">red<" in frames[0] and "\x1b" not in frames[0]
    assert frames[1] == (
        '<ol id="container-log" hx-swap-oob="beforeend"><li id="clog-201">last</li></ol>'
    )
    assert "The container stopped: the log ends here." in frames[-1]


@pytest.mark.engine
async def test_closing_the_log_panel_ends_the_stream(operator, log_of):
    running, path = await sync_to_async(log_of)("while true; do echo tick; sleep 0.2; done")
    socket = await connect(operator, path)
    await socket.receive_from()
    assert "tick" in await socket.receive_from(timeout=10)
    follower = await follower_of(running.id)
    await socket.disconnect()
    for _ in range(50):
        if not follower.is_alive():
            break
        await asyncio.sleep(0.1)
    assert not follower.is_alive()


def test_the_log_panel_never_holds_much_more_than_it_keeps():
    consumer = consumers.ContainerLogConsumer()
    consumer.kept = collections.deque(maxlen=consumer.KEEP)
    consumer.seq = consumer.since_trim = 0
    assert 'hx-swap-oob="true"' in consumer._lines(["first"], replace=True)
    frames = [consumer._lines([f"line {i}"], replace=False) for i in range(consumer.KEEP + 5)]
    # Lines are appended one message at a time; past KEEP new ones, the panel is replaced by
    # the last KEEP lines, once.
    replaced = [f for f in frames if 'hx-swap-oob="true"' in f]
    assert len(replaced) == 1 and replaced[0].count("<li") == consumer.KEEP
    assert all(f.count("<li") == 1 for f in frames if f not in replaced)
