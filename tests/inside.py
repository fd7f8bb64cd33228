"""Helpers for the tests of what happens inside engines: containers on the test engine as a
machine's watcher would store them, and terminal sockets read as a browser would."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import docker.errors
import pytest
from channels.testing import WebsocketCommunicator

from machines.engine import clients
from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.models import Container, Driver, Machine


def store_container(engine_url: str, running) -> Container:
    """A running container stored as its watcher would store it, on a machine that attaches
    the engine it runs on."""
    driver = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    machine = Machine.objects.create(
        name=f"in-{uuid.uuid4().hex[:6]}", driver=driver, state="running", engine_url=engine_url
    )
    return Container.objects.create(
        machine=machine, container_id=running.id, name=running.name, state="running"
    )


@pytest.fixture
def engine_container(engine_url, parent, host_images):
    """A factory: a container on the test engine running `command`, stored as the container
    of a machine that attaches the test engine (as its watcher would store it)."""
    made = []

    def start(command: str = "sleep 600", image: str = BARE_HOST_IMAGE, **kwargs):
        running = parent.containers.run(
            image,
            ["sh", "-c", command] if image == BARE_HOST_IMAGE else command.split(),
            name=f"inside-{uuid.uuid4().hex[:6]}",
            detach=True,
            network_mode="none",
            **kwargs,
        )
        made.append(running)
        return store_container(engine_url, running), running

    yield start
    for running in made:
        running.remove(force=True)


class Screen:
    """What a terminal socket sent: its output bytes (decoded as UTF-8) and status words."""

    def __init__(self, socket: WebsocketCommunicator) -> None:
        self.socket = socket
        self.raw = b""
        self.statuses: list[dict] = []
        self.closed = False

    @property
    def text(self) -> str:
        return self.raw.decode(errors="replace")

    async def read_until(self, predicate, timeout: float = 20) -> None:
        """Read frames until predicate(self) holds (or the socket closes)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            left = deadline - time.monotonic()
            assert left > 0 and not self.closed, (self.text[-500:], self.statuses)
            try:
                out = await self.socket.receive_output(timeout=left)
            except TimeoutError:
                continue
            if out["type"] == "websocket.close":
                self.closed = True
            elif out.get("bytes") is not None:
                self.raw += out["bytes"]
            elif (text := out.get("text") or "").startswith("{"):
                self.statuses.append(json.loads(text))

    async def type(self, keys: str) -> None:
        await self.socket.send_to(text_data=json.dumps({"i": keys}))

    async def resize(self, cols: int, rows: int) -> None:
        await self.socket.send_to(text_data=json.dumps({"r": [cols, rows]}))

    def ended(self) -> str | None:
        return next((s["status"] for s in self.statuses if s.get("ended")), None)


# A small image with a shell (bash and sh) and a few programs, built from this machine's own
# binaries (no registry is reachable): for terminals and stats on machines' own engines.
SHELL_IMAGE = "dockerdash-test/shell:1"
SHELL_PROGRAMS = ("bash", "sh", "stty", "sleep", "true", "cat", "id", "uname", "ls", "head")


def shell_image_tar() -> bytes:
    files: dict[str, bytes] = {
        "etc/passwd": b"root:x:0:0:root:/root:/bin/bash\n",
        "etc/group": b"root:x:0:\n",
    }
    # The C.UTF-8 locale, so that bash's line editing takes UTF-8 keystrokes.
    for path in Path("/usr/lib/locale/C.utf8").rglob("*"):
        if path.is_file():
            files[str(path).lstrip("/")] = path.read_bytes()
    for program in SHELL_PROGRAMS:
        binary = shutil.which(program)
        assert binary, program
        files[f"bin/{program}"] = Path(binary).resolve().read_bytes()
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for library in re.findall(r"(/\S+) \(0x", ldd):
            files[library.lstrip("/")] = Path(library).resolve().read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("tmp", "root", "proc", "dev", "sys"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def run_in(machine: Machine, command: str, name: str | None = None):
    """A container of the shell image running `command` on a machine's own engine."""
    client = clients.client_for_machine(machine, timeout=60)
    try:
        try:
            client.images.get(SHELL_IMAGE)
        except docker.errors.ImageNotFound:
            repository, tag = SHELL_IMAGE.split(":")
            client.api.import_image_from_data(shell_image_tar(), repository=repository, tag=tag)
        return client.containers.run(
            SHELL_IMAGE,
            ["/bin/sh", "-c", command],
            name=name or f"box-{uuid.uuid4().hex[:6]}",
            detach=True,
            environment={"PATH": "/bin"},
        )
    finally:
        client.close()
