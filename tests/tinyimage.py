"""A tiny image built from this machine's own `true` and `sleep` (no registry is reachable
here), loaded into an engine, and a container of it that runs until removed."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import docker

from machines.engine import clients
from machines.models import Machine

TINY = "dockerdash-test/tiny:1"


def tiny_image_tar(programs: tuple[str, ...] = ("true", "sleep")) -> bytes:
    """A root filesystem with `true` and `sleep` (or the programs given) and the libraries they
    load, taken from this machine: no registry is reachable here to pull an image from."""
    files: dict[str, str] = {}
    for program in programs:
        binary = shutil.which(program)
        assert binary, program
        files[f"bin/{program}"] = binary
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for library in re.findall(r"(/\S+) \(0x", ldd):
            files[library.lstrip("/")] = library
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, source in sorted(files.items()):
            data = Path(source).resolve().read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def load_tiny_image(machine: Machine) -> None:
    """Import the tiny image into a machine's engine (over its TLS)."""
    client = clients.client_for_machine(machine, timeout=60)
    try:
        client.api.import_image_from_data(tiny_image_tar(), repository=TINY.split(":")[0], tag="1")
    finally:
        client.close()


def run_sleeper(client: docker.DockerClient) -> docker.models.containers.Container:
    """Load the tiny image into the engine and start a container that sleeps for a day."""
    repository, tag = TINY.split(":")
    client.api.import_image_from_data(tiny_image_tar(), repository=repository, tag=tag)
    return client.containers.run(TINY, ["/bin/sleep", "86400"], detach=True)
