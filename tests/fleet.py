"""The real test fleet: a private Docker Engine and host containers booted from host images.

`make test` starts the engine (scripts/test-engine) and builds the images; these fixtures
hand tests the engine and ready machines. In CI (DOCKERDASH_REQUIRE_ENGINE=1) a missing
engine fails the tests that need it instead of skipping them.

Every stored machine a test needs is built with `make_machine()`, with or without a host.
"""

from __future__ import annotations

import os
import uuid

import docker
import pytest
from django.conf import settings

from machines.drivers import driver_class
from machines.drivers.container.driver import INSTANCE_LABEL
from machines.engine import clients
from machines.lib.hostimage import BARE_HOST_IMAGE, HOST_IMAGE
from machines.lib.ssh import SSHSession, generate_key
from machines.models import Driver, Machine, Operation
from machines.operations import actions as operations
from machines.operations import runner

REQUIRED = os.getenv("DOCKERDASH_REQUIRE_ENGINE") == "1"


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"DOCKERDASH_REQUIRE_ENGINE=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine_url() -> str:
    url = os.getenv("DOCKERDASH_TEST_ENGINE") or os.getenv("DOCKER_HOST")
    if not url:
        _unavailable("no test engine (run as root: `make test` starts scripts/test-engine)")
    try:
        clients.client(url, timeout=5).ping()
    except Exception as e:
        _unavailable(f"the test engine at {url} does not answer: {e}")
    return url


@pytest.fixture(scope="session")
def parent(engine_url) -> docker.DockerClient:
    client = clients.client(engine_url, timeout=120)
    # The engine is private to the suite: whatever a crashed run left behind goes now.
    _remove_machines(client)
    yield client
    _remove_machines(client)
    client.close()


def _remove_machines(client: docker.DockerClient) -> None:
    # Only this run's (this data dir's): other runs may share the engine at the same time.
    mine = {"label": f"{INSTANCE_LABEL}={settings.INSTANCE_ID}"}
    for container in client.containers.list(all=True, filters=mine):
        container.remove(force=True, v=True)
    for volume in client.volumes.list(filters=mine):
        volume.remove(force=True)


@pytest.fixture(scope="session")
def host_images(parent) -> dict[str, str]:
    for image in (HOST_IMAGE, BARE_HOST_IMAGE):
        try:
            parent.images.get(image)
        except docker.errors.ImageNotFound:
            _unavailable(f"the host image {image} is missing (manage.py build_host_image)")
    return {HOST_IMAGE: HOST_IMAGE, BARE_HOST_IMAGE: BARE_HOST_IMAGE}


@pytest.fixture
def container_driver(transactional_db, engine_url) -> Driver:
    driver, _ = Driver.objects.update_or_create(
        name="test-containers", defaults={"kind": "container", "settings": {"engine": engine_url}}
    )
    return driver


def make_machine(driver: str | Driver = "generic", **fields) -> Machine:
    """A stored machine, as `Machine.objects.create(driver=..., **fields)` would make it, with
    what such a row needs filled in: `driver` is a kind (its default row, made by migrate) or
    a Driver row; the name is unique unless given; a driver that reaches its hosts over SSH
    gets a new key of the machine's own unless `ssh_private_key` is given."""
    if isinstance(driver, str):
        driver = Driver.objects.get(name=driver)
    if not fields.get("name"):
        fields["name"] = f"t-{uuid.uuid4().hex[:8]}"
    if "ssh_private_key" not in fields and driver_class(driver.kind).provisioned:
        fields["ssh_private_key"] = generate_key()[0]
    return Machine.objects.create(driver=driver, **fields)


@pytest.fixture
def generic_machine(db) -> Machine:
    """A stored generic machine (its host is not contacted by tests using this)."""
    return make_machine(
        name="web-1",
        ip="192.0.2.10",
        state=Machine.State.RUNNING,
        docker_version="28.2.2",
        engine_labels=["env=prod"],
    )


def boot_host(new_machine, image: str | None = None) -> Machine:
    """A running host that nobody has provisioned: the container driver's create alone."""
    host = new_machine(image=image) if image else new_machine()
    host.get_driver().create(host, log=lambda _: None)
    host.save()
    return host


def ssh(machine: Machine, user: str | None = None) -> SSHSession:
    """SSH to the host as the machine reaches it (its key, its pinned host key)."""
    port = machine.ssh_port if machine.driver.kind == "generic" else 22
    return SSHSession(
        machine.ip, port, user or machine.ssh_user, machine.ssh_private_key, machine.ssh_host_key
    )


def run_operation(machine: Machine, kind: str, **args) -> Operation:
    """Request an operation and run it here, exactly as the runner would."""
    op = operations.request(machine, kind, via="cli", args=args)
    claimed = runner.claim(op.pk, worker="test")
    assert claimed is not None
    return runner.run_claimed(claimed)


def log_of(op: Operation) -> list[str]:
    return [line.text for line in op.log_lines.order_by("seq")]


def assert_succeeded(op: Operation) -> None:
    assert op.status == Operation.Status.SUCCEEDED, "\n".join([op.error, *log_of(op)])


@pytest.fixture
def new_machine(container_driver, parent, host_images):
    """A factory: a stored container machine, not yet created (unique names)."""
    made: list[Machine] = []

    def make(image: str = HOST_IMAGE, name: str | None = None) -> Machine:
        machine = make_machine(container_driver, driver_options={"image": image}, name=name)
        made.append(machine)
        return machine

    yield make
    for machine in made:
        container_driver.get_driver().remove(machine)


@pytest.fixture
def running_machine(new_machine) -> Machine:
    machine = new_machine()
    op = run_operation(machine, Operation.Kind.CREATE)
    assert op.status == Operation.Status.SUCCEEDED, op.error
    machine.refresh_from_db()
    return machine


def closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released): connecting is refused at
    once, for tests that only need a contact attempt to end quickly."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def container_cli(tmp_path, engine_url, host_images, parent):
    """`manage.py ...` run as a user runs it, in a shell, with its own data folder; the
    container machines it made are removed afterwards."""
    import shlex
    import subprocess

    from . import helpers

    env = helpers.user_env(tmp_path, DOCKER_HOST=engine_url)

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return helpers.run(" ".join([helpers.MANAGE, *map(shlex.quote, args)]), env, check, 300)

    cli("migrate", "--noinput")
    yield cli
    instance = (tmp_path / "instance.id").read_text().strip()
    for c in parent.containers.list(all=True, filters={"label": f"{INSTANCE_LABEL}={instance}"}):
        c.remove(force=True, v=True)
