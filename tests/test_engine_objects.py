"""An engine's images, volumes and networks, kept live by its watcher from the engine's
events, acted on by operators (removals here; pulls and prunes in test_browser_inside.py, on
a machine's own engine: the test engine is shared and is never pruned)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.urls import reverse

from machines import live
from machines.engine import actions as engine_actions
from machines.models import AuditEntry, Driver, EngineObject, Machine
from machines.operations import runner

from .helpers import wait_until
from .sockets import connect

pytestmark = pytest.mark.engine


@pytest.fixture
def watched(transactional_db, engine_url):
    """The test engine attached as a machine, its watcher running (as the runner's would)."""
    machine = Machine.objects.create(
        name=f"objects-{uuid.uuid4().hex[:4]}",
        driver=Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0],
        engine_url=engine_url,
        state=Machine.State.RUNNING,
    )
    watcher = runner.EngineWatcher(machine.pk)
    watcher.start()
    wait_until(lambda: Machine.objects.get(pk=machine.pk).engine_reachable)
    yield machine
    watcher.stop()
    watcher.join(10)


def _row(machine, kind: str, name: str):
    return EngineObject.objects.filter(machine=machine, kind=kind, name=name).first()


def test_volumes_networks_and_images_appear_and_go_as_the_engine_says(watched, parent):
    tag = uuid.uuid4().hex[:6]
    volume = parent.volumes.create(f"data-{tag}")
    network = parent.networks.create(f"net-{tag}", driver="bridge")
    try:
        row = wait_until(lambda: _row(watched, "volume", volume.name))
        assert row.details["driver"] == "local" and row.created is not None
        row = wait_until(lambda: _row(watched, "network", network.name))
        assert row.object_id == network.id and row.details["subnet"]
        assert _row(watched, "network", "bridge").details["builtin"] is True
        image = parent.images.list()[0]
        stored = EngineObject.objects.get(machine=watched, kind="image", object_id=image.id)
        assert stored.size == image.attrs["Size"] and stored.name in image.tags

        parent.images.get(image.id).tag("dockerdash-test/retagged", tag)
        wait_until(
            lambda: (
                f"dockerdash-test/retagged:{tag}"
                in EngineObject.objects.get(pk=stored.pk).details["tags"]
            )
        )
    finally:
        parent.images.remove(f"dockerdash-test/retagged:{tag}")
        volume.remove(force=True)
        network.remove()
    wait_until(lambda: not _row(watched, "volume", volume.name))
    wait_until(lambda: not _row(watched, "network", network.name))


def test_operators_remove_what_they_choose_and_the_engines_own_network_stays(
    watched, parent, operator_client, viewer_client
):
    volume = parent.volumes.create(f"scratch-{uuid.uuid4().hex[:6]}")
    wait_until(lambda: _row(watched, "volume", volume.name))
    url = reverse("machines:engine_action", args=[watched.name, "remove-volume"])
    assert viewer_client.post(url, {"id": volume.name}).status_code == 403
    answer = operator_client.post(url, {"id": volume.name}).content.decode()
    assert f"Removed volume {volume.name}." in answer
    wait_until(lambda: not _row(watched, "volume", volume.name))
    assert AuditEntry.objects.filter(what="remove volume", target=volume.name).exists()

    bridge = _row(watched, "network", "bridge")
    url = reverse("machines:engine_action", args=[watched.name, "remove-network"])
    answer = operator_client.post(url, {"id": bridge.object_id}).content.decode()
    assert "The bridge network is the engine&#x27;s own: it stays." in answer
    url = reverse("machines:engine_action", args=[watched.name, "pull"])
    answer = operator_client.post(url, {"image": "Not A Reference; rm -rf /"}).content.decode()
    assert "is not an image reference" in answer


def test_the_page_socket_gets_the_tables_then_their_changes(watched, parent, viewer):
    async def scenario():
        # The watcher is a thread of its own: it publishes through this loop, as through
        # the server's (live.bind_loop).
        live.bind_loop(asyncio.get_running_loop())
        socket = await connect(viewer, f"/ws/machines/{watched.pk}/engine/")
        snapshot = await socket.receive_from()
        for table in ("images", "volumes", "networks"):
            assert f'id="engine-{table}" hx-swap-oob="true"' in snapshot
        assert "Remove" not in snapshot  # viewers look, operators act
        volume = await sync_to_async(parent.volumes.create)(f"live-{uuid.uuid4().hex[:6]}")
        while volume.name not in (html := await socket.receive_from(timeout=20)):
            pass
        assert html.startswith('<table class="engine-objects" id="engine-volumes"')
        await sync_to_async(volume.remove)()
        while volume.name in await socket.receive_from(timeout=20):
            pass
        await socket.disconnect()

    try:
        async_to_sync(scenario)()
    finally:
        live.bind_loop(None)


def test_image_references_are_checked_before_any_engine_sees_them():
    for good in ("alpine", "10.214.0.1:5000/shop/app:1.2", "ghcr.io/x/y@sha256:" + "a" * 64):
        assert engine_actions.IMAGE_REF_RE.fullmatch(good), good
    for bad in ("Alpine", "a b", "x:tag\n", "-x", "x:" + "t" * 200, "$(id)"):
        assert not engine_actions.IMAGE_REF_RE.fullmatch(bad), bad
