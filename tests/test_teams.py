"""Teams and machine groups on real container machines: team A's operator acts on A's
machines and finds nothing of B's (page, socket, bulk by filter, fleet search, counts,
pushes); an admin of group A cannot remove a machine of group B."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from machines import live
from machines.models import BulkAction, Container, Machine, Operation
from machines.operations import runner

from .fleet import assert_succeeded, boot_host
from .helpers import team_member
from .sockets import connect, refused


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _two_groups(new_machine) -> tuple[Machine, Machine]:
    """Two real host containers, tagged env=a and env=b, and a team on each group."""
    hosts = []
    for env in ("a", "b"):
        host = boot_host(new_machine)
        host.tags = {"env": env}
        host.state = Machine.State.RUNNING
        host.save()
        # What the engine watcher stores for each host's containers.
        Container.objects.create(machine=host, container_id=f"c-{env}", name=f"shop-{env}")
        hosts.append(host)
    team_member("bob", "operator", "group-b", "env=b")
    return hosts[0], hosts[1]


@pytest.mark.django_db(transaction=True)
def test_team_a_operator_acts_on_a_and_finds_nothing_of_b(new_machine):
    a, b = _two_groups(new_machine)
    alice = _client(team_member("alice", "operator", "group-a", "env=a"))

    # Restart A: requested through the page, run by a runner on the real host container.
    response = alice.post(reverse("machines:action", args=[a.name, "restart"]))
    assert response.status_code in (200, 302)
    op = Operation.objects.get(machine=a, kind="restart")
    assert op.requested_by.username == "alice"
    assert_succeeded(runner.run_claimed(runner.claim(op.pk, worker="test")))

    # B: a 404 for its page and its action, never a 403 that would say it exists.
    assert alice.get(reverse("machines:detail", args=[b.name])).status_code == 404
    assert alice.post(reverse("machines:action", args=[b.name, "restart"])).status_code == 404
    assert alice.get(reverse("machines:engine", args=[b.name])).status_code == 404

    # The list and its counts: A alone.
    page = alice.get(reverse("machines:list"))
    assert a.name in page.content.decode() and b.name not in page.content.decode()
    assert page.context["counts_total"] == 1

    # Fleet-wide container search: A's container, not B's.
    fleet = alice.get(reverse("machines:fleet") + "?q=shop").content.decode()
    assert "shop-a" in fleet and "shop-b" not in fleet

    # Bulk by filter (every machine): B is never found, let alone acted on.
    alice.post(reverse("machines:bulk_request"), {"action": "stop", "scope": "filter"})
    bulk = BulkAction.objects.get(kind="stop")
    assert list(bulk.operations.values_list("machine_name", flat=True)) == [a.name]
    assert b.name not in str(bulk.skipped)
    assert not Operation.objects.filter(machine=b).exists()
    # Ticking B by name (a forged form) finds nothing either.
    alice.post(
        reverse("machines:bulk_request"),
        {"action": "restart", "scope": "selected", "machine": [b.name]},
    )
    assert not Operation.objects.filter(machine=b).exists()
    # B's operator still sees and acts on B.
    bob = _client(User.objects.get(username="bob"))
    assert bob.get(reverse("machines:detail", args=[b.name])).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_an_admin_of_group_a_cannot_remove_b(new_machine):
    a, b = _two_groups(new_machine)
    anna = _client(team_member("anna", "admin", "group-a", "env=a"))
    remove_b = anna.post(reverse("machines:remove", args=[b.name]), {"confirm": b.name})
    assert remove_b.status_code == 404
    # Bulk rm of "every machine": the count to type is A's alone, and B stays.
    anna.post(reverse("machines:bulk_request"), {"action": "rm", "scope": "filter", "confirm": "1"})
    bulk = BulkAction.objects.get(kind="rm")
    assert list(bulk.operations.values_list("machine_name", flat=True)) == [a.name]
    assert not Operation.objects.filter(machine=b).exists()
    # A's own page offers Remove to her.
    assert anna.get(reverse("machines:remove", args=[a.name])).status_code == 200


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr id="machine-(\d+)"', html)


@pytest.mark.django_db(transaction=True)
async def test_sockets_and_pushes_never_carry_b(new_machine):
    a, b = await sync_to_async(_two_groups)(new_machine)
    alice = await sync_to_async(team_member)("alice", "operator", "group-a", "env=a")
    assert await refused(alice, f"/ws/machines/{b.pk}/")
    assert await refused(alice, f"/ws/machines/{b.pk}/containers/")
    assert await refused(alice, f"/ws/machines/{b.pk}/engine/")

    socket = await connect(alice, "/ws/machines/")
    assert _rows(await socket.receive_from()) == [str(a.pk)]
    counts = await socket.receive_from()
    assert "<strong>1</strong>" in counts and "<strong>2</strong>" not in counts
    # B changes state: no row, and her counts did not change, so nothing at all.
    b.state = Machine.State.STOPPED
    await sync_to_async(b.save)()
    await sync_to_async(live.machine_changed)(b)
    assert await socket.receive_nothing(timeout=0.5)
    # A changes: its row comes, and her counts.
    a.state = Machine.State.STOPPED
    await sync_to_async(a.save)()
    await sync_to_async(live.machine_changed)(a)
    assert _rows(await socket.receive_from()) == [str(a.pk)]
    assert "Stopped</span> <strong>1</strong>" in await socket.receive_from()
    await socket.disconnect()

    fleet = await connect(alice, "/ws/containers/?q=shop")
    snapshot = await fleet.receive_from()
    assert "shop-a" in snapshot and "shop-b" not in snapshot
    container_b = await sync_to_async(Container.objects.get)(name="shop-b")
    container_b.state = "exited"
    await sync_to_async(container_b.save)()
    await sync_to_async(live.container_changed)(container_b)
    assert await fleet.receive_nothing(timeout=0.5)
    await fleet.disconnect()


@pytest.mark.django_db
def test_the_server_cli_as_a_team_member_sees_and_acts_as_they_may(capsys):
    from django.core.management import call_command

    from .fleet import make_machine

    make_machine("generic", name="app-a", tags={"env": "a"})
    make_machine("generic", name="app-b", tags={"env": "b"})
    team_member("alice", "viewer", "group-a", "env=a")
    call_command("machine", "--as", "alice", "ls", "-q")
    assert capsys.readouterr().out.split() == ["app-a"]
    call_command("machine", "ls", "-q")  # the server's own operator: everything
    assert capsys.readouterr().out.split() == ["app-a", "app-b"]
    with pytest.raises(SystemExit):
        call_command("machine", "--as", "alice", "status", "app-b")
    assert 'Docker machine "app-b" does not exist.' in capsys.readouterr().err
    # A viewer of A may look, not act: refused in one sentence, nothing recorded.
    with pytest.raises(SystemExit):
        call_command("machine", "--as", "alice", "restart", "app-a")
    assert "You may not restart machines." in capsys.readouterr().err
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_an_api_token_caps_at_its_users_teams():
    from machines.services import tokens

    from .fleet import make_machine

    make_machine("generic", name="app-a", tags={"env": "a"}, state="running")
    make_machine("generic", name="app-b", tags={"env": "b"}, state="running")
    alice = team_member("alice", "operator", "group-a", "env=a")
    _, secret = tokens.mint(alice, "ci", "operate")
    api = Client(headers={"Authorization": f"Bearer {secret}"})
    names = [m["name"] for m in api.get("/api/v1/machines").json()["results"]]
    assert names == ["app-a"]
    assert api.get("/api/v1/machines/app-b").status_code == 404
    assert api.post("/api/v1/machines/app-b/actions/restart").status_code == 404
    started = api.post("/api/v1/machines/app-a/actions/restart")
    assert started.status_code in (200, 202), started.json()
    assert list(Operation.objects.values_list("machine_name", flat=True)) == ["app-a"]
    # Her role is operator: a token cannot reach above it (admin scope refused).
    with pytest.raises(tokens.TokenError):
        tokens.mint(alice, "too-much", "admin")
