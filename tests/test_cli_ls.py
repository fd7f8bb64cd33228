"""`machine ls` and `machine inspect` read stored state, as docker-machine printed it."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from machines.models import Machine, Operation
from tests.fleet import make_machine


def _ls(*args: str) -> str:
    out = StringIO()
    call_command("machine", "ls", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def fleet(db, generic_machine):
    make_machine("none", name="edge-1", engine_url="tcp://192.0.2.30:2376", state="stopped")
    make_machine("none", name="edge-2", state="error", last_error="boom")
    return Machine.objects.all()


def test_ls_prints_a_table(fleet):
    lines = _ls().splitlines()
    assert lines[0].split() == ["NAME", "ACTIVE", "DRIVER", "STATE", "URL", "DOCKER", "ERRORS"]
    assert lines[1].split() == [
        "edge-1",
        "-",
        "none",
        "Stopped",
        "tcp://192.0.2.30:2376",
        "Unknown",
    ]
    assert lines[3].split()[:4] == ["web-1", "-", "generic", "Running"]
    assert "tcp://192.0.2.10:2376" in lines[3] and "28.2.2" in lines[3]


def test_ls_quiet_filter_and_format(fleet):
    assert _ls("-q").split() == ["edge-1", "edge-2", "web-1"]
    assert _ls("-q", "--filter", "driver=none").split() == ["edge-1", "edge-2"]
    # several values of one key: OR; several keys: AND
    assert _ls("-q", "-f", "state=stopped", "-f", "state=running").split() == ["edge-1", "web-1"]
    assert _ls("-q", "-f", "driver=none", "-f", "state=error").split() == ["edge-2"]
    assert _ls("-q", "-f", "name=^edge-[0-9]$").split() == ["edge-1", "edge-2"]
    assert _ls("-q", "-f", "label=env=prod").split() == ["web-1"]
    assert _ls("--format", "{{.Name}}: {{.State}} {{.Error}}").splitlines() == [
        "edge-1: Stopped ",
        "edge-2: Error boom",
        "web-1: Running ",
    ]
    table = _ls("--format", "table {{.Name}}\\t{{.DriverName}}").splitlines()
    assert table[0].split() == ["NAME", "DRIVER"]


def _fails(*args: str) -> str:
    """Run a command that must fail as docker-machine did: exit 1, the error on stderr."""
    err = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("machine", *args, stdout=StringIO(), stderr=err)
    assert exit_.value.code == 1
    return err.getvalue()


def test_ls_rejects_unknown_fields_and_filters(fleet):
    assert "Unknown field 'Nope'" in _fails("ls", "--format", "{{.Nope}}")
    assert "Unsupported filter 'colour=blue'" in _fails("ls", "-f", "colour=blue")


def test_inspect_prints_json_with_operations(fleet):
    machine = Machine.objects.get(name="web-1")
    Operation.objects.create(
        machine=machine, machine_name="web-1", kind="restart", status="succeeded"
    )
    out = StringIO()
    call_command("machine", "inspect", "web-1", stdout=out)
    data = json.loads(out.getvalue())
    assert data["Name"] == "web-1"
    assert data["DriverName"] == "generic"
    assert data["State"] == "running"
    assert data["IPAddress"] == "192.0.2.10"
    assert data["URL"] == "tcp://192.0.2.10:2376"
    assert data["DockerVersion"] == "28.2.2"
    assert data["Operations"][0] | {"ID": 0, "CreatedAt": ""} == {
        "ID": 0,
        "Kind": "restart",
        "Status": "succeeded",
        "CreatedAt": "",
        "FinishedAt": None,
        "Error": "",
    }
    assert "PRIVATE" not in out.getvalue()
    assert _fails("inspect", "nope").strip() == (
        'Docker machine "nope" does not exist. Use "dockerdash ls" to list machines. '
        'Use "dockerdash create" to add a new one.'
    )
