"""Websockets as a browser opens them (WebsocketCommunicator, the user's session cookie), and
containers on the test engine whose log sockets tests follow."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from dockerdash.asgi import application
from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.models import Container

from .fleet import make_machine


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def communicator(user, path: str) -> WebsocketCommunicator:
    cookie = await sync_to_async(_cookie)(user)
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
    return WebsocketCommunicator(application, path, headers=[*headers, (b"cookie", cookie)])


async def connect(user, path: str) -> WebsocketCommunicator:
    socket = await communicator(user, path)
    connected, _ = await socket.connect()
    assert connected, path
    return socket


async def refused(user, path: str) -> bool:
    socket = await communicator(user, path)
    connected, _ = await socket.connect()
    await socket.disconnect()
    return not connected


async def frames_until_close(socket: WebsocketCommunicator, timeout: float = 15) -> list[str]:
    frames = []
    while (out := await socket.receive_output(timeout=timeout))["type"] != "websocket.close":
        frames.append(out["text"])
    return frames


async def follower_of(container_id: str, timeout: float = 30) -> threading.Thread:
    """The thread following a container's log for a socket of this process (it starts just
    after the socket's first frame)."""
    deadline = time.monotonic() + timeout
    while True:
        name = f"logs-{container_id[:12]}"
        if followers := [t for t in threading.enumerate() if t.name == name]:
            [follower] = followers
            return follower
        assert time.monotonic() < deadline, f"no thread follows the log of {container_id}"
        await asyncio.sleep(0.01)


@pytest.fixture
def log_of(engine_url, parent, host_images):
    """A factory: a container on the test engine running a script, as its machine's watcher
    stores it; gives the container and the path of its log socket."""
    started = []

    def start(script: str):
        running = parent.containers.run(
            host_images[BARE_HOST_IMAGE],
            ["sh", "-c", script],
            name=f"ui-logs-{uuid.uuid4().hex[:6]}",
            detach=True,
            network_mode="none",
        )
        started.append(running)
        machine = make_machine(
            "none", name=f"logs-{uuid.uuid4().hex[:6]}", state="running", engine_url=engine_url
        )
        Container.objects.create(
            machine=machine, container_id=running.id, name=running.name, state="running"
        )
        return running, f"/ws/machines/{machine.pk}/containers/{running.id}/logs/"

    yield start
    for running in started:
        running.remove(force=True)
