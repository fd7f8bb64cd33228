"""Provisioning real hosts of the test fleet over SSH: Docker, TLS, daemon configuration.

The container driver's machines are real Debian 12 systemd hosts with sshd; for the generic
driver they are the "existing hosts", booted without provisioning and then taken over.
"""

from __future__ import annotations

import http.server
import io
import os
import shutil
import socket
import ssl
import subprocess
import threading
import uuid
from pathlib import Path

import docker
import pytest
from django.conf import settings
from django.core.management import call_command

from machines.drivers.container.driver import INSTANCE_LABEL, LABEL, NETWORK
from machines.engine import clients
from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.lib.ssh import SSHSession
from machines.models import CertificateAuthority, Driver, Machine, Operation
from machines.operations import actions as operations
from machines.operations import runner
from machines.pki import certs

from .fleet import assert_succeeded, boot_host, log_of, make_machine, run_operation, ssh
from .tinyimage import TINY, load_tiny_image, tiny_image_tar

pytestmark = pytest.mark.engine

DROPIN = "/etc/systemd/system/docker.service.d/zz-dockerdash.conf"
FOREIGN = "/etc/systemd/system/docker.service.d/10-foreign.conf"


# -- helpers -------------------------------------------------------------------------


def assert_no_secret_logged(*machines: Machine) -> None:
    """No private key (SSH, TLS server, CA, client) in any log line of these machines."""
    secrets = [m.ssh_private_key for m in machines] + [m.tls_server_key for m in machines]
    for ca in CertificateAuthority.objects.all():
        secrets += [ca.key, ca.client_key]
    bodies = [
        line
        for secret in secrets
        for line in secret.splitlines()
        if line and not line.startswith("-----")
    ]
    for machine in machines:
        for op in Operation.objects.filter(machine_name=machine.name):
            for text in [*log_of(op), op.error]:
                assert "PRIVATE KEY" not in text
                for body in bodies:
                    assert body not in text


def tls_refused_without_client_cert(machine: Machine) -> str:
    """What the engine's port answers without a client certificate: never the API."""
    host, port = machine.ip, machine.engine_port
    # Plain HTTP on the TLS port.
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"GET /version HTTP/1.0\r\n\r\n")
        plain = raw.recv(200).decode(errors="replace")
    assert "200 OK" not in plain
    # TLS that trusts the server but shows no client certificate.
    ca = certs.ca_for_machine(machine)
    context = ssl.create_default_context(cadata=ca.cert)
    try:
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(b"GET /version HTTP/1.0\r\nHost: x\r\n\r\n")
            answer = tls.recv(200).decode(errors="replace")
    except (ssl.SSLError, ConnectionResetError) as e:
        answer = f"refused: {e}"
    assert "200 OK" not in answer
    return plain + " | " + answer


def dockerd_pid(session: SSHSession) -> str:
    return session.check("systemctl show -p MainPID --value docker.service").strip()


# -- the tests ---------------------------------------------------------------------------


def test_container_create_ends_with_a_tls_engine_and_a_numbered_log(running_machine):
    machine = running_machine
    op = machine.operations.get()
    lines = log_of(op)
    steps = [line for line in lines if line.startswith("[")]
    assert steps == [
        "[1/9] Create the host with the container driver",
        "[2/9] Check the host",
        "[3/9] Connect to root@" + machine.ip + ":22 over SSH",
        "[4/9] Detect the operating system",
        "[5/9] Install Docker",
        "[6/9] Issue the TLS certificates",
        "[7/9] Configure the Docker daemon",
        "[8/9] Restart Docker",
        "[9/9] Wait for the Docker API",
    ]
    assert any(line.startswith("Docker is installed; keeping it") for line in lines)
    stamps = [line.at for line in op.log_lines.order_by("seq")]
    assert stamps == sorted(stamps)

    assert machine.engine_url == f"tcp://{machine.ip}:2376"
    assert machine.docker_version.startswith("20.10")
    assert machine.engine_reachable is True
    assert machine.tls_server_serial and machine.tls_server_expires_at
    client = clients.client_for_machine(machine)
    info = client.info()
    client.close()
    assert "provider=container" in info["Labels"]
    assert info["LiveRestoreEnabled"] is True
    assert info["Name"] == machine.name
    tls_refused_without_client_cert(machine)
    with ssh(machine) as session:
        # The host keeps its socket activation and its local socket.
        assert session.check("docker -H unix:///var/run/docker.sock version -f '{{.Server.Os}}'")
        assert session.check("stat -c %a /etc/docker/dockerdash/server-key.pem").strip() == "600"
        # Files over SFTP: written whole, with their mode from the start.
        session.put("/root/sftp-test", b"over sftp\n", mode=0o640)
        assert session.check("stat -c %a /root/sftp-test; cat /root/sftp-test") == "640\nover sftp"
    assert_no_secret_logged(machine)


def test_generic_takes_over_a_docker_host_with_a_foreign_dropin_without_reinstalling(
    new_machine, tmp_path
):
    host = boot_host(new_machine)
    with ssh(host) as session:
        session.check(
            f"mkdir -p /etc/systemd/system/docker.service.d && printf '%s\\n' '[Service]' "
            f"'Environment=FOREIGN_MARKER=kept' > {FOREIGN} && systemctl daemon-reload"
        )
        before = session.check("stat -c %Y /usr/sbin/dockerd; wc -l < /var/log/dpkg.log")
    key = tmp_path / "id_ed25519"
    key.write_text(host.ssh_private_key)
    name = f"g-{uuid.uuid4().hex[:8]}"
    Driver.objects.get_or_create(name="generic", defaults={"kind": "generic"})
    call_command(
        "machine",
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        host.ip,
        "--generic-ssh-key",
        str(key),
        "--engine-label",
        'note=has "quotes" $HOME 100%',
        "--engine-insecure-registry",
        "registry.internal:5000",
        "--engine-registry-mirror",
        "https://mirror.internal",
        "--engine-env",
        "DOCKERDASH_TEST=a b",
        "--engine-opt",
        "log-level=warn",
        "--tls-san",
        "docker.example.com",
        name,
        stdout=io.StringIO(),
    )
    machine = Machine.objects.get(name=name)
    assert_succeeded(machine.operations.get())
    lines = log_of(machine.operations.get())
    assert lines[0] == "[1/9] Create the host with the generic driver"
    assert any("keeping it" in line for line in lines)

    with ssh(machine) as session:
        assert session.check("stat -c %Y /usr/sbin/dockerd; wc -l < /var/log/dpkg.log") == before
        assert session.check(f"cat {FOREIGN}").splitlines()[1] == "Environment=FOREIGN_MARKER=kept"
        environ = session.check(f"tr '\\0' '\\n' < /proc/{dockerd_pid(session)}/environ")
        assert "FOREIGN_MARKER=kept" in environ.splitlines()
        assert "DOCKERDASH_TEST=a b" in environ.splitlines()
        assert session.check("cat /proc/sys/kernel/hostname").strip() == name
    client = clients.client_for_machine(machine)
    info = client.info()
    assert client.version()["Version"] == machine.docker_version
    client.close()
    assert 'note=has "quotes" $HOME 100%' in info["Labels"]
    assert info["RegistryConfig"]["IndexConfigs"]["registry.internal:5000"]["Secure"] is False
    assert info["RegistryConfig"]["Mirrors"] == ["https://mirror.internal/"]
    assert "docker.example.com" in certs.names_in(machine.tls_server_cert)
    assert_no_secret_logged(machine)

    # Provisioning again changes nothing: no file rewritten, no daemon restart.
    with ssh(machine) as session:
        pid = dockerd_pid(session)
    call_command("machine", "provision", name, stdout=io.StringIO())
    op = machine.operations.filter(kind=Operation.Kind.PROVISION).get()
    assert_succeeded(op)
    assert "Nothing changed and Docker is running: not restarting it" in log_of(op)
    with ssh(machine) as session:
        assert dockerd_pid(session) == pid


def test_restart_of_a_generic_machine_reboots_the_host_and_waits(new_machine):
    host = boot_host(new_machine)
    machine = make_machine(ip=host.ip, ssh_private_key=host.ssh_private_key)
    assert_succeeded(run_operation(machine, Operation.Kind.CREATE))
    machine.refresh_from_db()
    with ssh(machine) as session:
        boot = session.check("cut -d' ' -f22 /proc/1/stat")
    op = run_operation(machine, Operation.Kind.RESTART)
    assert_succeeded(op)
    assert [line for line in log_of(op) if line.startswith("[")] == [
        f"[1/3] Restart {machine.name}",
        "[2/3] Check the host",
        "[3/3] Check the Docker engine",
    ]
    machine.refresh_from_db()
    with ssh(machine) as session:
        assert session.check("cut -d' ' -f22 /proc/1/stat") != boot
    client = clients.client_for_machine(machine)
    assert client.ping()
    client.close()


def test_rm_purge_undoes_the_daemon_config_and_leaves_the_host(new_machine, parent):
    host = boot_host(new_machine)
    machine = make_machine(ip=host.ip, ssh_private_key=host.ssh_private_key)
    assert_succeeded(run_operation(machine, Operation.Kind.CREATE))
    machine.refresh_from_db()
    op = run_operation(machine, Operation.Kind.REMOVE, purge=True)
    assert_succeeded(op)
    assert not Machine.objects.filter(pk=machine.pk).exists()
    with ssh(host) as session:
        assert session.run(f"test -e {DROPIN} || test -e /etc/docker/dockerdash")[0] != 0
        assert session.check("systemctl is-active docker.service").strip() == "active"
        assert session.check("docker version -f '{{.Server.Version}}'").startswith("20.10")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host.ip, 2376), timeout=3).close()
    assert parent.containers.get(f"dockerdash-{host.name}").status == "running"


def test_regenerate_certs_changes_the_serial_and_leaves_containers_running(running_machine):
    machine = running_machine
    load_tiny_image(machine)
    client = clients.client_for_machine(machine)
    container = client.containers.run(TINY, ["sleep", "3600"], detach=True)
    container.reload()
    started_at = container.attrs["State"]["StartedAt"]
    client.close()
    with ssh(machine) as session:
        session.check("hostname elsewhere")
        dropin = session.check(f"stat -c %Y {DROPIN}")
    serial = machine.tls_server_serial

    call_command("machine", "regenerate-certs", "-f", machine.name, stdout=io.StringIO())
    op = machine.operations.filter(kind=Operation.Kind.REGENERATE_CERTS).get()
    assert_succeeded(op)
    assert [line for line in log_of(op) if line.startswith("[")] == [
        f"[1/5] Connect to root@{machine.ip}:22 over SSH",
        "[2/5] Detect the operating system",
        "[3/5] Issue new TLS certificates",
        "[4/5] Install the certificates and restart Docker",
        "[5/5] Wait for the Docker API",
    ]
    machine.refresh_from_db()
    assert machine.tls_server_serial != serial
    client = clients.client_for_machine(machine)
    again = client.containers.get(container.id)
    served = client.api.inspect_container(container.id)
    client.close()
    assert again.status == "running"
    assert served["State"]["StartedAt"] == started_at
    with ssh(machine) as session:
        assert session.check("cat /proc/sys/kernel/hostname").strip() == "elsewhere"
        assert session.check(f"stat -c %Y {DROPIN}") == dropin
        # The engine now presents the new certificate.
        pem = session.check("cat /etc/docker/dockerdash/server.pem")
    assert format(certs.load(pem).serial_number, "x") == machine.tls_server_serial
    assert_no_secret_logged(machine)


def test_a_new_ca_keeps_other_machines_reachable_until_they_move(new_machine):
    a, b = new_machine(), new_machine()
    for m in (a, b):
        assert_succeeded(run_operation(m, Operation.Kind.CREATE))
        m.refresh_from_db()
    old_ca = certs.get_or_create_ca()

    assert_succeeded(run_operation(a, Operation.Kind.REGENERATE_CERTS, client_certs=True))
    a.refresh_from_db()
    new_ca = certs.get_or_create_ca()
    assert new_ca.pk != old_ca.pk and new_ca.cert != old_ca.cert
    for m, ca in ((a, new_ca), (b, old_ca)):
        assert certs.ca_for_machine(m).pk == ca.pk
        client = clients.client_for_machine(m)
        assert client.ping()
        client.close()
    op = a.operations.filter(kind=Operation.Kind.REGENERATE_CERTS).get()
    assert "still use the previous CA and stay reachable with it until you run " in "\n".join(
        log_of(op)
    )
    # The new client certificate is refused by b until b gets certificates of the new CA.
    wrong = clients.client(
        b.url, ca=old_ca.cert, cert=new_ca.client_cert, key=new_ca.client_key, timeout=5
    )
    with pytest.raises(Exception, match=r"(?i)certificate|tls|ssl|reset"):
        wrong.ping()
    wrong.close()

    assert_succeeded(run_operation(b, Operation.Kind.REGENERATE_CERTS))
    b.refresh_from_db()
    assert certs.ca_for_machine(b).pk == new_ca.pk
    assert list(CertificateAuthority.objects.values_list("pk", flat=True)) == [new_ca.pk]
    client = clients.client_for_machine(b)
    assert client.ping()
    client.close()


def _occupy(parent, ip: str) -> docker.models.containers.Container:
    """A stand-in container holding `ip` on the machines' network (addresses are handed out
    lowest first), so that the machine gets another one, as after a cloud stop/start."""
    stand_in = parent.containers.run(
        BARE_HOST_IMAGE,
        ["infinity"],
        entrypoint="/bin/sleep",
        detach=True,
        network=NETWORK,
        labels={LABEL: "stand-in", INSTANCE_LABEL: settings.INSTANCE_ID},
    )
    stand_in.reload()
    assert stand_in.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"] == ip
    return stand_in


def test_a_new_ip_after_start_gets_a_new_certificate(running_machine, parent):
    machine = running_machine
    old_ip = machine.ip
    assert_succeeded(run_operation(machine, Operation.Kind.STOP))
    stand_in = _occupy(parent, old_ip)
    try:
        op = run_operation(machine, Operation.Kind.START)
        assert_succeeded(op)
        machine.refresh_from_db()
        assert machine.ip != old_ip
        assert machine.engine_url == f"tcp://{machine.ip}:2376"
        assert any(f"is now {machine.ip}" in line for line in log_of(op))
        assert certs.covers(machine.tls_server_cert, machine.ip)
        client = clients.client_for_machine(machine)
        assert client.ping()
        client.close()
    finally:
        stand_in.remove(force=True)


def test_an_ip_change_under_a_running_machine_is_healed_by_an_operation(running_machine, parent):
    machine = running_machine
    load_tiny_image(machine)
    client = clients.client_for_machine(machine)
    running = client.containers.run(TINY, ["sleep", "3600"], detach=True)
    client.close()
    assert operations.request_ip_heal(machine) is None  # nothing changed yet

    # Moved on its network while running: the engine's certificate no longer names its IP.
    network = parent.networks.get(NETWORK)
    container = parent.containers.get(f"dockerdash-{machine.name}")
    old_ip = machine.ip
    network.disconnect(container)
    stand_in = _occupy(parent, old_ip)
    try:
        network.connect(container)
        op = operations.request_ip_heal(machine)
        assert op is not None and op.kind == Operation.Kind.REGENERATE_CERTS
        assert op.requested_via == "system"
        assert_succeeded(runner.run_claimed(runner.claim(op.pk, worker="test")))
        machine.refresh_from_db()
        assert machine.ip != old_ip and machine.engine_url == f"tcp://{machine.ip}:2376"
        assert f"The IP of {machine.name} changed from {old_ip} to {machine.ip}" in log_of(op)
        client = clients.client_for_machine(machine)
        assert client.containers.get(running.id).status == "running"
        client.close()
        assert operations.request_ip_heal(machine) is None
    finally:
        stand_in.remove(force=True)


def test_upgrade_keeps_docker_from_the_distribution_current(running_machine):
    machine = running_machine
    call_command("machine", "upgrade", machine.name, stdout=io.StringIO())
    op = machine.operations.filter(kind=Operation.Kind.UPGRADE).get()
    assert_succeeded(op)
    lines = log_of(op)
    assert "  Upgrading docker.io" in lines
    assert any(line.startswith(("Docker 20.10", "Upgraded:")) for line in lines)
    machine.refresh_from_db()
    assert machine.engine_reachable and machine.docker_version.startswith("20.10")


def test_a_foreign_dropin_that_replaces_execstart_after_ours_is_named(running_machine):
    machine = running_machine
    with ssh(machine) as session:
        session.check(
            "printf '%s\\n' '[Service]' 'ExecStart=' 'ExecStart=/usr/sbin/dockerd -H fd://' "
            "> /etc/systemd/system/docker.service.d/zzz-local.conf && systemctl daemon-reload"
        )
    op = run_operation(machine, Operation.Kind.PROVISION)
    assert op.status == Operation.Status.FAILED
    assert op.error.startswith(
        f"Another systemd drop-in of docker.service on {machine.ip} sets ExecStart after ours"
    )
    assert "/etc/systemd/system/docker.service.d/zzz-local.conf" in op.error


def test_an_engine_that_does_not_start_shows_its_log(running_machine):
    machine = running_machine
    # A daemon flag dockerd does not know: the restart fails and the journal says why.
    machine.engine_opts = ["--no-such-flag"]
    machine.save()
    op = run_operation(machine, Operation.Kind.PROVISION)
    assert op.status == Operation.Status.FAILED
    assert op.error.startswith(f"Docker did not start on {machine.ip}")
    assert "Last lines of the Docker daemon's log:" in op.error
    assert "unknown flag: --no-such-flag" in op.error


@pytest.fixture
def tiny_tar(tmp_path) -> Path:
    path = tmp_path / "tiny.tar"
    path.write_bytes(tiny_image_tar())
    return path


def test_a_machine_env_points_the_real_docker_cli_at_the_engine(running_machine, tiny_tar):
    """The acceptance path of the Docker-ready host (the bare one is in test_cli_env)."""
    machine = running_machine
    out = io.StringIO()
    call_command("machine", "env", machine.name, stdout=out)
    docker_cli = shutil.which("docker") or "/usr/local/bin/docker"
    script = (
        f'eval "$(cat)" && {docker_cli} import - {TINY} < {tiny_tar} >/dev/null && '
        f"{docker_cli} run --rm {TINY} true && echo ran"
    )
    done = subprocess.run(
        ["bash", "-c", script],
        input=out.getvalue(),
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("ran")


def test_an_install_script_url_installs_docker_on_a_bare_host(new_machine, parent):
    """docker-machine's --engine-install-url, with a script served from this machine (the
    hosts reach no other site than Debian's mirror here)."""
    host = boot_host(new_machine, image=BARE_HOST_IMAGE)
    script = (
        b"#!/bin/sh\nset -e\necho installing with the script\napt-get -q update >/dev/null\n"
        b"DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends docker.io\n"
    )

    class Script(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(script)))
            self.end_headers()
            self.wfile.write(script)

        def log_message(self, *args):
            pass

    gateway = parent.networks.get(NETWORK).attrs["IPAM"]["Config"][0]["Gateway"]
    server = http.server.ThreadingHTTPServer((gateway, 0), Script)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        machine = make_machine(ip=host.ip, ssh_private_key=host.ssh_private_key)
        machine.engine_install_url = f"http://{gateway}:{server.server_address[1]}/install.sh"
        machine.save()
        op = run_operation(machine, Operation.Kind.CREATE)
        assert_succeeded(op)
        lines = log_of(op)
        assert f"Docker is not installed; installing it from {machine.engine_install_url}" in lines
        assert "  installing with the script" in lines
        assert any(line.startswith("Installed Docker version 20.10") for line in lines)
    finally:
        server.shutdown()
        server.server_close()
