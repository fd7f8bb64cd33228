"""The none driver: engines made elsewhere, attached by URL (TLS, ssh:// or a socket)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from machines.models import Machine
from machines.operations import runner
from machines.pki import certs

pytestmark = pytest.mark.engine


def _create(*args: str) -> str:
    out = StringIO()
    call_command("machine", "create", "-d", "none", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_attach_a_tls_engine_with_its_files(running_machine, tmp_path):
    # An engine this test fleet provisioned, attached as if it had been made elsewhere.
    bundle = certs.write_client_bundle(running_machine)
    _create(
        "--url",
        running_machine.url,
        "--tls-ca-cert",
        str(bundle / "ca.pem"),
        "--tls-client-cert",
        str(bundle / "cert.pem"),
        "--tls-client-key",
        str(bundle / "key.pem"),
        "attached-tls",
    )
    machine = Machine.objects.get(name="attached-tls")
    assert machine.driver.kind == "none" and machine.engine_url == running_machine.url
    runner.check_machine(machine)
    machine.refresh_from_db()
    assert machine.engine_reachable, machine.last_error
    assert machine.docker_version.startswith("20.10")


def test_a_tcp_engine_without_tls_is_refused(db):
    err = StringIO()
    with pytest.raises(SystemExit):
        call_command(
            "machine",
            "create",
            "-d",
            "none",
            "--url",
            "tcp://192.0.2.9:2375",
            "plain",
            stdout=StringIO(),
            stderr=err,
        )
    assert "A tcp:// engine is reached only with TLS" in err.getvalue()
    assert not Machine.objects.filter(name="plain").exists()


def test_attach_an_engine_over_ssh(running_machine, tmp_path, monkeypatch):
    # ssh:// goes through this server's own ~/.ssh, as the docker CLI does: a config naming
    # the key, and known_hosts with the host's key (unknown hosts are refused).
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    key = home / ".ssh" / "id_machine"
    key.write_text(running_machine.ssh_private_key)
    key.chmod(0o600)
    (home / ".ssh" / "config").write_text(
        f"Host {running_machine.ip}\n  User root\n  IdentityFile {key}\n"
    )
    known = home / ".ssh" / "known_hosts"
    known.write_text(f"{running_machine.ip} {running_machine.ssh_host_key}\n")
    monkeypatch.setenv("HOME", str(home))
    _create("--url", f"ssh://root@{running_machine.ip}", "attached-ssh")
    machine = Machine.objects.get(name="attached-ssh")
    runner.check_machine(machine)
    machine.refresh_from_db()
    assert machine.engine_reachable, machine.last_error
    # A host whose key is not known is refused.
    known.write_text("")
    runner.check_machine(machine)
    machine.refresh_from_db()
    assert machine.engine_reachable is False
    assert "not found in known_hosts" in machine.last_error
