"""Three running container machines pulling from the test registry, the images stacks use
pushed there (the tiny programs and the web server), and helpers to wait on a cluster."""

from __future__ import annotations

import time

import pytest
import requests

from machines.models import Machine, Operation
from machines.operations import runner

from .fleet import run_operation
from .tinyimage import tiny_image_tar
from .webimage import hello_layer


@pytest.fixture
def three_machines(new_machine, registry) -> list[Machine]:
    machines = []
    for n in range(3):
        machine = new_machine(name=f"sw{n + 1}-{int(time.time() * 1000) % 100000}")
        machine.engine_insecure_registries = [registry.address]
        machine.save()
        op = run_operation(machine, Operation.Kind.CREATE)
        assert op.status == Operation.Status.SUCCEEDED, op.error
        machine.refresh_from_db()
        machines.append(machine)
    return machines


@pytest.fixture
def web_images(registry) -> dict[str, str]:
    """web:1 and web:2 (the same server; the tag is what a redeploy changes) and sleeper:1."""
    layers = [tiny_image_tar(), hello_layer()]
    return {
        "web1": registry.push("web", "1", layers),
        "web2": registry.push("web", "2", layers),
        "sleeper": registry.push("sleeper", "1", [tiny_image_tar()]),
    }


def run(op: Operation) -> Operation:
    """Run a requested operation here, as the runner would."""
    claimed = runner.claim(op.pk, worker="test")
    assert claimed is not None
    return runner.run_claimed(claimed)


def wait_for(check, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def answers(ip: str, port: int) -> str:
    try:
        return requests.get(f"http://{ip}:{port}/", timeout=3).text.strip()
    except requests.RequestException:
        return ""


STACK = """\
services:
  web:
    image: ${WEB_IMAGE}
    command: ["/bin/hello"]
    environment:
      MESSAGE: ${MESSAGE}
      PORT: "8080"
      API_KEY: ${API_KEY}
    deploy:
      mode: global
    ports:
      - target: 8080
        published: 8081
        mode: host
  worker:
    image: ${SLEEPER_IMAGE}
    command: ["/bin/sleep", "86400"]
    deploy:
      replicas: 3
"""
