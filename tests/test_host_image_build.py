"""No manual first step: the first container machines on an engine without the host image
build it themselves (its progress in their operation logs), and concurrent creates share one
build. On a fresh private engine; the cached root filesystem makes the import take seconds."""

from __future__ import annotations

import contextlib
import threading

import docker.errors
import pytest
from django.db import close_old_connections

from machines.drivers.container.driver import NETWORK
from machines.engine import clients
from machines.lib.hostimage import HOST_IMAGE
from machines.lib.ssh import generate_key
from machines.models import Driver, Machine, Operation

from .fleet import run_operation
from .private_engine import private_dockerd

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]
# The fresh engine's networks: clear of the test engine's pool and of 172.17.0.0/16.
POOL = "base=10.231.0.0/16,size=24"


def _log(op: Operation) -> list[str]:
    return list(op.log_lines.values_list("text", flat=True))


def test_concurrent_creates_on_a_fresh_engine_build_the_host_image_once(tmp_path, engine_url):
    with private_dockerd(tmp_path, POOL) as engine:
        client = clients.client(engine.url, timeout=60)
        assert not client.images.list()  # fresh: no host image
        driver = Driver.objects.create(
            name="fresh-engine", kind="container", settings={"engine": engine.url}
        )
        key, _ = generate_key()
        machines = [
            Machine.objects.create(
                name=f"fresh-{i}",
                driver=driver,
                driver_options={"image": HOST_IMAGE},
                ssh_private_key=key,
            )
            for i in range(2)
        ]
        done: dict[str, Operation] = {}

        def create(machine: Machine) -> None:
            try:
                done[machine.name] = run_operation(machine, Operation.Kind.CREATE)
            finally:
                close_old_connections()

        threads = [threading.Thread(target=create, args=(m,)) for m in machines]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(600)
            logs = {name: _log(op) for name, op in done.items()}
            for name, op in done.items():
                assert op.status == "succeeded", "\n".join(logs[name])
            imports = [
                line
                for log in logs.values()
                for line in log
                if line.startswith(f"{HOST_IMAGE}: importing")
            ]
            assert len(imports) == 1, logs
            assert any(
                f"The host image {HOST_IMAGE} is not on {engine.url} yet: building it there" in log
                for log in logs.values()
            )
            assert client.images.get(HOST_IMAGE)
        finally:
            for machine in machines:
                with contextlib.suppress(Exception):
                    driver.get_driver().remove(machine)
            # A bridge of a stopped engine outlives it: none may be left on this host.
            for network in client.networks.list(names=[NETWORK]):
                with contextlib.suppress(docker.errors.APIError):
                    network.remove()
            client.close()
