"""`manage.py machine ...` with the container driver, run as a user runs it: in a shell."""

from __future__ import annotations

import re
import uuid

import pytest

pytestmark = pytest.mark.engine


@pytest.fixture
def cli(container_cli):
    return container_cli


def test_create_ls_stop_start_restart_kill_rm(cli, engine_url):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    created = cli("machine", "create", "-d", "container", "--container-engine", engine_url, name)
    assert f"Creating machine {name} (container)..." in created.stdout
    assert re.search(r"^\[1/\d+\] Create the host with the container driver$", created.stdout, re.M)
    assert re.search(r"^\[\d+/\d+\] .*TLS", created.stdout, re.M)
    assert created.stdout.rstrip().endswith("Done")

    ls = cli("machine", "ls").stdout.splitlines()
    row = next(line.split() for line in ls if line.startswith(name))
    assert row[:4] == [name, "-", "container", "Running"]
    ip = cli("machine", "ip", name).stdout.strip()
    assert row[4] == f"tcp://{ip}:2376"  # provisioned: a TLS engine
    assert cli("machine", "ls", "--format", "{{.Name}} {{.IP}}").stdout.strip() == f"{name} {ip}"

    for action, state in [
        ("stop", "Stopped"),
        ("start", "Running"),
        ("restart", "Running"),
        ("kill", "Stopped"),
    ]:
        result = cli("machine", action, name)
        assert result.stdout.rstrip().endswith("Done"), result.stdout
        assert cli("machine", "status", name).stdout.strip() == state, action

    removed = cli("machine", "rm", "-y", name)
    assert f"Successfully removed {name}" in removed.stdout
    assert name not in cli("machine", "ls", "-q").stdout


def test_default_engine_is_docker_host(cli):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    cli("machine", "create", "-d", "container", name)  # no --container-engine
    assert cli("machine", "status", name).stdout.strip() == "Running"
    cli("machine", "rm", "-y", name)


def test_failures_exit_1_with_the_error_on_stderr(cli, tmp_path):
    down = f"unix://{tmp_path}/nothing.sock"
    result = cli(
        "machine", "create", "-d", "container", "--container-engine", down, "cli-down", check=False
    )
    assert result.returncode == 1
    assert f"Parent engine {down} is not reachable" in result.stderr
    assert cli("machine", "status", "cli-down").stdout.strip() == "Error"

    result = cli("machine", "create", "-d", "container", "-bad-name", check=False)
    assert result.returncode != 0
    result = cli("machine", "create", "-d", "container", "bad_name", check=False)
    assert result.returncode == 1
    assert "Invalid machine name 'bad_name'" in result.stderr

    result = cli("machine", "stop", "no-such-machine", check=False)
    assert result.returncode == 1
    assert 'Docker machine "no-such-machine" does not exist.' in result.stderr
    # Its engine is still down: rm says so, and -f forgets the machine all the same.
    result = cli("machine", "rm", "-y", "cli-down", check=False)
    assert result.returncode == 1
    assert f"Parent engine {down} is not reachable" in result.stderr
    assert "No such file or directory" in result.stderr
    forced = cli("machine", "rm", "-y", "-f", "cli-down")
    assert "Successfully removed cli-down" in forced.stdout
    assert "cli-down" not in cli("machine", "ls", "-q").stdout
