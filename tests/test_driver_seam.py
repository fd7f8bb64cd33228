"""Drivers are plug-ins: a package and one registry line make a whole driver.

The fake-ssh driver (tests/drivers/fake_ssh) is added the way the README's "Adding a driver"
says, with nothing else touched: the real CLI then offers its flags, creates a machine with
it, provisions that host with TLS, and the real docker CLI reaches its engine.
"""

from __future__ import annotations

import shlex
import shutil

import pytest

from machines.operations.actions import ACTIONS

from .helpers import MANAGE, run, user_env

pytestmark = pytest.mark.engine

FAKE_SSH = "fake-ssh=tests.drivers.fake_ssh.driver.FakeSSHDriver"


def test_a_driver_package_and_one_registry_line_make_a_whole_driver(
    tmp_path, engine_url, new_machine, container_driver
):
    # A running host of the test fleet for the new driver to hand out (booted, not provisioned).
    host = new_machine()
    container_driver.get_driver().create(host)
    env = user_env(tmp_path, DOCKERDASH_EXTRA_DRIVERS=FAKE_SSH)
    docker = shutil.which("docker") or "/usr/local/bin/docker"

    def sh(script: str, check: bool = True):
        return run(script, env, check, timeout=300)

    sh(f"{MANAGE} migrate --noinput")
    flags = sh(f"{MANAGE} machine create --help").stdout
    assert "--fake-ssh-container" in flags and "--fake-ssh-engine" in flags

    container = shlex.quote(container_driver.get_driver().container_name(host))
    created = sh(
        f"{MANAGE} machine create -d fake-ssh --fake-ssh-engine {shlex.quote(engine_url)} "
        f"--fake-ssh-container {container} seam-1"
    ).stdout
    # Every step of a provisioned create ran, numbered from the one declaration of create
    # (all but joining a swarm cluster, which applies only with --swarm).
    total = len(ACTIONS["create"].steps) - 1
    assert f"[1/{total}] Create the host with the fake-ssh driver" in created
    assert f"[{total}/{total}] Wait for the Docker API" in created
    assert created.rstrip().endswith("Done")

    listed = sh(f"{MANAGE} machine ls --format '{{{{.Name}}}} {{{{.DriverName}}}} {{{{.State}}}}'")
    assert listed.stdout.split() == ["seam-1", "fake-ssh", "Running"]
    version = sh(
        f'eval "$({MANAGE} machine env seam-1)" && {docker} version -f "{{{{.Server.Os}}}}"'
    )
    assert version.stdout.strip() == "linux"

    removed = sh(f"{MANAGE} machine rm -y seam-1").stdout
    assert "Successfully removed seam-1" in removed
    # The driver says rm leaves the host: it is still running.
    assert container_driver.get_driver().state(host) == "running"
