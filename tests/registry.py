"""A private image registry on the test fleet (no public registry is reachable here).

Debian's `docker-registry` (the distribution registry) runs on this machine, listening only
on the gateway address of the machines' network, where the engines inside host containers
reach it; machines that pull from it trust it as an insecure registry (their engine's
`--insecure-registry`, a machine option). Images are pushed with the registry's own HTTP API:
layers built here (tests/tinyimage.py's programs, and a layer of random bytes big enough for a
pull to show progress).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from machines.drivers.container.driver import NETWORK
from machines.models import Machine, Operation

from .browser import free_port
from .fleet import _unavailable, run_operation
from .tinyimage import tiny_image_tar

REGISTRY = "/usr/bin/docker-registry"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG = "application/vnd.docker.container.image.v1+json"


@dataclass
class Registry:
    address: str  # host:port, as engines name it
    url: str  # http://host:port

    def push(self, name: str, tag: str, layers: list[bytes]) -> str:
        """Push an image of these layers (uncompressed tars); its reference."""
        compressed = [gzip.compress(layer, mtime=0) for layer in layers]
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sleep", "3600"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer) for layer in layers]},
            "history": [{"created_by": "tests/registry.py"} for _ in layers],
        }
        config_blob = json.dumps(config).encode()
        for blob in [config_blob, *compressed]:
            self._upload(name, blob)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": CONFIG,
                "size": len(config_blob),
                "digest": _digest(config_blob),
            },
            "layers": [
                {"mediaType": LAYER, "size": len(blob), "digest": _digest(blob)}
                for blob in compressed
            ],
        }
        response = requests.put(
            f"{self.url}/v2/{name}/manifests/{tag}",
            data=json.dumps(manifest).encode(),
            headers={"Content-Type": MANIFEST},
            timeout=30,
        )
        response.raise_for_status()
        return f"{self.address}/{name}:{tag}"

    def _upload(self, name: str, blob: bytes) -> None:
        start = requests.post(f"{self.url}/v2/{name}/blobs/uploads/", timeout=30)
        start.raise_for_status()
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.url + location
        separator = "&" if "?" in location else "?"
        done = requests.put(
            f"{location}{separator}digest={_digest(blob)}",
            data=blob,
            headers={"Content-Type": "application/octet-stream"},
            timeout=60,
        )
        done.raise_for_status()


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def data_layer(size: int, path: str = "data/blob") -> bytes:
    """A layer holding one file of random (incompressible) bytes."""
    payload = os.urandom(size)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(path)
        info.size, info.mode = len(payload), 0o644
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def sample_layers() -> list[bytes]:
    return [tiny_image_tar(), data_layer(6 * 1024 * 1024)]


def _machines_gateway(parent, container_driver) -> str:
    # The machines' network exists once any machine was made; make it now if not.
    container_driver.get_driver()._ensure_network(parent)
    network = parent.networks.get(NETWORK)
    return network.attrs["IPAM"]["Config"][0]["Gateway"]


@pytest.fixture(scope="session")
def registry_process(tmp_path_factory):
    """The registry program, started once per session on a free port (all addresses)."""
    if not Path(REGISTRY).exists():
        _unavailable(f"{REGISTRY} is missing (apt-get install docker-registry)")
    folder = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {folder}/data\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 0.0.0.0:{port}\n"
    )
    log = open(folder / "registry.log", "w")  # noqa: SIM115
    process = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).raise_for_status()
            break
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                log.close()
                raise AssertionError((folder / "registry.log").read_text()) from None
            time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(10)
    log.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def registry(registry_process, parent, container_driver) -> Registry:
    """The registry as the machines reach it: at their network's gateway."""
    address = f"{_machines_gateway(parent, container_driver)}:{registry_process}"
    return Registry(address=address, url=f"http://{address}")


@pytest.fixture
def registry_machine(new_machine, registry) -> Machine:
    """A running container machine whose engine pulls from the test registry."""
    machine = new_machine()
    machine.engine_insecure_registries = [registry.address]
    machine.save()
    op = run_operation(machine, Operation.Kind.CREATE)
    assert op.status == Operation.Status.SUCCEEDED, op.error
    machine.refresh_from_db()
    return machine
