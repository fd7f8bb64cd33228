"""Bulk actions: one operation per machine of a selection or of the list's filter, at most
BULK_CONCURRENCY running at once, followed on one summary; viewers never see the controls,
rm is for admins with the count typed."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse
from django.utils import timezone

from machines.lib.ssh import generate_key
from machines.models import BulkAction, Driver, Machine, Operation
from machines.operations import runner

from .fleet import closed_port
from .sockets import connect

BULK = reverse("machines:bulk_request")


def _fleet(count: int, state: str = "running", prefix: str = "web", **fields) -> list[Machine]:
    generic = Driver.objects.get_or_create(name="generic", defaults={"kind": "generic"})[0]
    port = closed_port()  # SSH is refused there: an operation fails at once, in words
    key, _ = generate_key()
    return [
        Machine.objects.create(
            name=f"{prefix}-{i}",
            driver=generic,
            ip="127.0.0.1",
            ssh_port=port,
            ssh_private_key=key,
            state=state,
            last_checked=timezone.now(),
            **fields,
        )
        for i in range(count)
    ]


@pytest.mark.django_db
def test_a_bulk_restart_of_the_selection_is_one_operation_per_machine(operator_client):
    machines = _fleet(3)
    _fleet(1, state="stopped", prefix="off")  # not selected: untouched
    response = operator_client.post(
        BULK, {"action": "restart", "scope": "selected", "machine": ["web-0", "web-2", "nope"]}
    )
    bulk = BulkAction.objects.get()
    assert response.status_code == 302 and response.url == reverse("machines:bulk", args=[bulk.pk])
    ops = bulk.operations.order_by("machine_name")
    assert [(op.machine_name, op.kind, op.status) for op in ops] == [
        ("web-0", "restart", "pending"),
        ("web-2", "restart", "pending"),
    ]
    assert all(op.requested_by.username == "operator" for op in ops)
    assert bulk.selection == "2 selected"
    page = operator_client.get(response.url).content.decode()
    assert "0 done" in page and "2 waiting" in page and "of 2" in page
    assert f'href="/machines/web-0/#operation-{ops[0].pk}"' in page
    assert machines[1].operations.count() == 0


@pytest.mark.django_db
def test_a_bulk_on_the_filter_skips_what_does_not_apply_with_the_reason(operator_client):
    _fleet(2, tags={"env": "prod"})
    _fleet(1, state="stopped", prefix="cold", tags={"env": "prod"})
    _fleet(2, prefix="dev", tags={"env": "dev"})
    list_page = operator_client.get(reverse("machines:list") + "?tag=env%3Dprod").content.decode()
    assert "all 3 machines matching this view" in list_page
    operator_client.post(BULK, {"action": "upgrade", "scope": "filter", "tag": "env=prod"})
    bulk = BulkAction.objects.get()
    assert sorted(bulk.operations.values_list("machine_name", flat=True)) == ["web-0", "web-1"]
    assert bulk.skipped == [
        ["cold-0", "cold-0 is stopped: Upgrade applies when its state is Running or Error."]
    ]
    assert bulk.selection == "all matching tag=env=prod"
    page = operator_client.get(bulk.get_absolute_url()).content.decode()
    assert "1 skipped" in page and "cold-0</a>: cold-0 is stopped" in page


@pytest.mark.django_db
def test_viewers_never_see_the_controls_and_cannot_post(viewer_client, operator_client):
    _fleet(2)
    page = viewer_client.get(reverse("machines:list")).content.decode()
    assert 'id="bulk-form"' not in page and 'name="machine"' not in page
    assert viewer_client.post(BULK, {"action": "restart", "scope": "filter"}).status_code == 403
    operator_page = operator_client.get(reverse("machines:list")).content.decode()
    assert 'id="bulk-form"' in operator_page
    assert '<option value="rm">' not in operator_page  # removing is for admins
    assert BulkAction.objects.count() == 0


@pytest.mark.django_db
def test_rm_is_for_admins_with_the_count_typed(operator_client, admin_client_):
    _fleet(3)
    data = {"action": "rm", "scope": "filter", "q": "web"}
    assert operator_client.post(BULK, data).status_code == 403
    refused = admin_client_.post(BULK, {**data, "confirm": "2"}, follow=True).content.decode()
    assert "Type 3 (the number of machines) to remove them: nothing was removed." in refused
    assert Operation.objects.count() == 0
    assert '<option value="rm">' in admin_client_.get(reverse("machines:list")).content.decode()
    admin_client_.post(BULK, {**data, "confirm": "3"})
    bulk = BulkAction.objects.get()
    assert bulk.operations.filter(kind="rm", status="pending").count() == 3


@pytest.mark.django_db
def test_nothing_selected_says_so(operator_client):
    _fleet(1)
    page = operator_client.post(
        BULK, {"action": "restart", "scope": "selected"}, follow=True
    ).content.decode()
    assert "No machine is selected: nothing was done." in page


@pytest.mark.django_db(transaction=True)
def test_runners_run_a_bulk_at_most_its_concurrency_at_once(settings):
    from machines.services import bulk as bulks

    settings.BULK_CONCURRENCY = 2
    machines = _fleet(5)
    lone = _fleet(1, prefix="lone")[0]
    bulk = bulks.request_bulk("restart", machines, selection="5")
    single = Operation.objects.create(machine=lone, machine_name=lone.name, kind="restart")
    claimed = [runner.claim(worker="w1"), runner.claim(worker="w2")]
    assert {op.bulk_id for op in claimed} == {bulk.pk}
    # Two of the bulk run: the next claim takes the operation outside it, then none.
    assert runner.claim(worker="w3").pk == single.pk
    assert runner.claim(worker="w4") is None
    runner.run_claimed(claimed[0])
    third = runner.claim(worker="w5")
    assert third is not None and third.bulk_id == bulk.pk
    counts = bulk.counts()
    assert (counts["failed"], counts["running"], counts["pending"]) == (1, 2, 2)
    # An operation asked for by its id (a CLI running it itself) is not held back.
    pending = bulk.operations.filter(status="pending").first()
    assert runner.claim(pending.pk, worker="cli") is not None


@pytest.mark.django_db(transaction=True)
async def test_the_summary_follows_each_operation_live(viewer):
    from machines.services import bulk as bulks

    machines = await sync_to_async(_fleet)(2)
    bulk = await sync_to_async(bulks.request_bulk)("restart", machines, selection="2")
    socket = await connect(viewer, f"/ws/bulk/{bulk.pk}/")
    rows = await socket.receive_from()
    assert rows.startswith('<tbody id="bulk-ops" hx-swap-oob="true"')
    assert "2 waiting" in await socket.receive_from()
    op = await sync_to_async(runner.claim)(worker="test")
    await sync_to_async(runner.run_claimed)(op)
    seen = [await socket.receive_from() for _ in range(6)]
    assert any(f'<tr id="bulk-op-{op.pk}" hx-swap-oob="true"' in s and "failed" in s for s in seen)
    assert any(
        re.search(
            r"0 done</strong> · <span class=\"error\">1 failed</span> · 0 running · 1 waiting", s
        )
        for s in seen
    )
    await socket.disconnect()
