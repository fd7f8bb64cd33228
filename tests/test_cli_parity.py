"""docker-machine's commands on real machines, and a move from a docker-machine store."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command

from machines.drivers.container.driver import INSTANCE_LABEL
from machines.lib.ssh import SSHSession
from machines.models import Machine
from machines.operations import runner

from .dmstores import configure_as_docker_machine, go_style_cert
from .helpers import MANAGE, ROOT, cancel_a_provision_on_a_frozen_host, run, user_env, wait_until

pytestmark = pytest.mark.engine
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


@pytest.fixture(scope="module")
def shell(tmp_path_factory, engine_url, host_images, parent):
    """A user's shell: `manage.py machine ...` against a data dir of its own, with two real
    container machines created through the CLI."""
    data = tmp_path_factory.mktemp("parity")
    environ = user_env(data)

    def sh(script: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return run(script, {**environ, **kw}, check)

    sh.data = data
    sh.manage = MANAGE
    sh.names = [f"par-{uuid.uuid4().hex[:5]}" for _ in range(2)]
    sh(f"{sh.manage} migrate --noinput")
    for name in sh.names:
        sh(f"{sh.manage} machine create -d container --container-engine {engine_url} {name}")
    yield sh
    instance = (data / "instance.id").read_text().strip()
    for c in parent.containers.list(all=True, filters={"label": f"{INSTANCE_LABEL}={instance}"}):
        c.remove(force=True, v=True)


def test_ssh_runs_commands_with_the_pinned_key_and_passes_the_exit_status(shell):
    a, _ = shell.names
    assert shell(f"{shell.manage} machine ssh {a} hostname").stdout.strip() == a
    status = shell(f"{shell.manage} machine ssh {a} 'exit 3'", check=False)
    assert status.returncode == 3


def test_scp_to_from_and_between_machines(shell, tmp_path):
    a, b = shell.names
    src = tmp_path / "hello.txt"
    src.write_text("hello from the laptop\n")
    m = shell.manage
    shell(f"{m} machine scp {src} {b}:/tmp/hello.txt")
    a = shell.names[0]
    shell(f"{m} machine scp {b}:/tmp/hello.txt {a}:/tmp/copy.txt")  # between two machines
    assert shell(f"{m} machine ssh {a} cat /tmp/copy.txt").stdout == "hello from the laptop\n"
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").write_text("in a folder\n")
    shell(f"{m} machine scp -r {tmp_path / 'dir'} {b}:/tmp/")
    assert shell(f"{m} machine ssh {b} cat /tmp/dir/f").stdout == "in a folder\n"
    back = tmp_path / "back.txt"
    shell(f"{m} machine scp {b}:/tmp/hello.txt {back}")
    assert back.read_text() == "hello from the laptop\n"


def test_active_version_url_and_status(shell):
    _, b = shell.names
    m = shell.manage
    url = shell(f"{m} machine url {b}").stdout.strip()
    assert re.fullmatch(r"tcp://[\d.]+:2376", url)
    assert shell(f"{m} machine active", DOCKER_HOST=url).stdout.strip() == b
    none = shell(f"{m} machine active", check=False)
    assert none.returncode == 1 and none.stderr.strip() == "No active host found"
    assert shell(f"{m} machine version").stdout.startswith("dockerdash version ")
    assert shell(f"{m} machine status {b}").stdout.strip() == "Running"
    ls = shell(
        f"{m} machine ls --format '{{{{.Name}}}} {{{{.Active}}}} {{{{.State}}}}'", DOCKER_HOST=url
    ).stdout.splitlines()
    assert f"{b} * Running" in ls


def _manage(shell, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "machine", *args],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DOCKER")},
            "DOCKERDASH_DATA_DIR": str(shell.data),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ctrl_c_detaches_and_the_operation_goes_on(shell):
    _, b = shell.names
    # A provision (SSH, OS detection, certificates, the daemon restarted, its API waited for)
    # runs for seconds after its first step: time enough for Ctrl-C to land mid-way even on a
    # loaded machine (a container machine's restart could end first, under a second).
    proc = _manage(shell, "provision", b)
    first = proc.stdout.readline()
    assert first.startswith("[1/")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (first, out, err)
    assert f"Detached: the provision of {b} goes on in the runner" in err
    assert f"machine cancel {b} stops it" in err

    def provisioned():
        info = json.loads(shell(f"{shell.manage} machine inspect {b}").stdout)
        return (
            info["Operations"][0]["Status"] == "succeeded"
            and info["Operations"][0]["Kind"] == "provision"
        )

    wait_until(provisioned, timeout=180, every=1)
    assert shell(f"{shell.manage} machine status {b}").stdout.strip() == "Running"


def test_cancel_stops_an_operation_under_way_and_waits_for_it(shell, parent):
    """The host frozen, a provision waits in its first step (SSH); `machine cancel` asks it to
    stop, says it stops after that step, and returns once it has: the provision ends
    cancelled (exit 1), the host untouched and running."""
    a, _ = shell.names
    host = parent.containers.get(f"dockerdash-{a}")
    cancel_a_provision_on_a_frozen_host(host, a, functools.partial(_manage, shell))
    info = json.loads(shell(f"{shell.manage} machine inspect {a}").stdout)
    assert info["Operations"][0]["Kind"] == "provision"
    assert info["Operations"][0]["Status"] == "cancelled"
    again = shell(f"{shell.manage} machine cancel {a} nosuch", check=False)
    assert again.returncode == 1
    assert f"{a} has no operation under way." in again.stderr
    assert 'Docker machine "nosuch" does not exist.' in again.stderr
    assert shell(f"{shell.manage} machine status {a}").stdout.strip() == "Running"


def test_a_generic_machine_over_the_same_commands(shell, tmp_path):
    """A user's own key, authorized on an existing host, then `create -d generic` on it."""
    _, b = shell.names
    m = shell.manage
    key = tmp_path / "id_ed25519"
    shell(f"ssh-keygen -q -t ed25519 -N '' -f {key}")
    shell(f"{m} machine ssh {b} 'cat >> /root/.ssh/authorized_keys' < {key}.pub")
    ip = shell(f"{m} machine ip {b}").stdout.strip()
    gen = f"gen-{uuid.uuid4().hex[:5]}"
    created = shell(
        f"{m} machine create -d generic --generic-ip-address {ip} --generic-ssh-key {key} {gen}"
    ).stdout
    assert created.rstrip().endswith("Done")
    assert shell(f"{m} machine ls -q --filter driver=generic").stdout.split() == [gen]
    assert shell(f"{m} machine status {gen}").stdout.strip() == "Running"
    # Provisioning names the host after the machine, as docker-machine did.
    assert shell(f"{m} machine ssh {gen} hostname").stdout.strip() == gen
    (tmp_path / "f").write_text("to the generic host\n")
    shell(f"{m} machine scp {tmp_path / 'f'} {gen}:/tmp/f")
    assert shell(f"{m} machine ssh {gen} cat /tmp/f").stdout == "to the generic host\n"
    version = shell(
        f"eval \"$({m} machine env {gen})\" && {DOCKER} version --format '{{{{.Server.Version}}}}'"
    ).stdout.strip()
    assert version.startswith("20.10")
    assert shell(f"{m} machine url {gen}").stdout.strip() == f"tcp://{ip}:2376"
    assert json.loads(shell(f"{m} machine inspect {gen}").stdout)["DriverName"] == "generic"
    # stop is not something a generic host can do; rm forgets it and leaves the host alone.
    stop = shell(f"{m} machine stop {gen}", check=False)
    assert stop.returncode == 1 and "generic driver cannot stop a host" in stop.stderr
    shell(f"{m} machine rm -y {gen}")
    assert gen not in shell(f"{m} machine ls -q").stdout
    assert shell(f"{m} machine ssh {b} 'systemctl is-active docker'").stdout.strip() == "active"


def test_ssh_refuses_a_changed_host_key(shell):
    # Last of the shell tests: it leaves the machine with a host key that no longer matches.
    a, _ = shell.names
    shell(
        f"{shell.manage} machine ssh {a} 'rm /etc/ssh/ssh_host_* && ssh-keygen -A -q && "
        "systemctl restart ssh'"
    )
    refused = shell(f"{shell.manage} machine ssh {a} true", check=False)
    assert refused.returncode != 0
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr


# -- import-docker-machine -------------------------------------------------------------


def _pem(obj) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _docker_machine_store(store: Path, name: str, ip: str, driver: str) -> dict[str, str]:
    """A store laid out as docker-machine 0.16 writes it; config.json's paths name a store
    elsewhere (/home/alice/...), as in a store copied from another user."""
    old = "/home/alice/.docker/machine"
    certs, mdir = store / "certs", store / "machines" / name
    mdir.mkdir(parents=True)
    if not (certs / "ca.pem").exists():
        certs.mkdir(parents=True)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca = go_style_cert("alice", ca_key.public_key(), "alice", ca_key, ca=True)
        client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        client = go_style_cert("alice", client_key.public_key(), "alice", ca_key)
        for fname, obj in [
            ("ca.pem", ca),
            ("ca-key.pem", ca_key),
            ("cert.pem", client),
            ("key.pem", client_key),
        ]:
            (certs / fname).write_text(_pem(obj))
    ca = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((certs / "ca-key.pem").read_bytes(), None)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = go_style_cert(
        f"alice.{name}",
        server_key.public_key(),
        "alice",
        ca_key,
        server=True,
        hosts=[ip, "127.0.0.1"],
    )
    ssh_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for fname in ("ca.pem", "cert.pem", "key.pem"):
        shutil.copy(certs / fname, mdir / fname)
    (mdir / "server.pem").write_text(_pem(server))
    (mdir / "server-key.pem").write_text(_pem(server_key))
    (mdir / "id_rsa").write_text(_pem(ssh_key))
    public = (
        ssh_key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    (mdir / "id_rsa.pub").write_text(public + "\n")
    driver_cfg = {
        "IPAddress": ip,
        "MachineName": name,
        "SSHUser": "root",
        "SSHPort": 22,
        "SSHKeyPath": f"{old}/machines/{name}/id_rsa",
        "StorePath": old,
        "SwarmMaster": False,
        "SwarmHost": "",
        "SwarmDiscovery": "",
    }
    if driver == "generic":
        driver_cfg |= {"EnginePort": 2376, "SSHKey": "/home/alice/.ssh/id_rsa"}
    else:
        driver_cfg |= {"VBoxManager": {}, "CPU": 1, "Memory": 1024}
    config = {
        "ConfigVersion": 3,
        "Driver": driver_cfg,
        "DriverName": driver,
        "HostOptions": {
            "Driver": "",
            "Memory": 0,
            "Disk": 0,
            "EngineOptions": {
                "ArbitraryFlags": [],
                "Dns": None,
                "GraphDir": "",
                "Env": [],
                "Ipv6": False,
                "InsecureRegistry": [],
                "Labels": ["env=lab"],
                "LogLevel": "",
                "StorageDriver": "",
                "SelinuxEnabled": False,
                "TlsVerify": True,
                "RegistryMirror": [],
                "InstallURL": "https://get.docker.com",
            },
            "SwarmOptions": {
                "IsSwarm": False,
                "Address": "",
                "Discovery": "",
                "Agent": False,
                "Master": False,
                "Host": "tcp://0.0.0.0:3376",
                "Image": "swarm:latest",
                "Strategy": "spread",
                "Heartbeat": 0,
                "Overcommit": 0,
                "ArbitraryFlags": [],
                "ArbitraryJoinFlags": [],
                "Env": None,
                "IsExperimental": False,
            },
            "AuthOptions": {
                "CertDir": f"{old}/certs",
                "CaCertPath": f"{old}/certs/ca.pem",
                "CaPrivateKeyPath": f"{old}/certs/ca-key.pem",
                "CaCertRemotePath": "",
                "ServerCertPath": f"{old}/machines/{name}/server.pem",
                "ServerKeyPath": f"{old}/machines/{name}/server-key.pem",
                "ClientKeyPath": f"{old}/certs/key.pem",
                "ServerCertRemotePath": "",
                "ServerKeyRemotePath": "",
                "ClientCertPath": f"{old}/certs/cert.pem",
                "ServerCertSANs": [],
                "StorePath": f"{old}/machines/{name}",
            },
        },
        "Name": name,
    }
    (mdir / "config.json").write_text(json.dumps(config, indent=4))
    return {
        "server": _pem(server),
        "server_key": _pem(server_key),
        "ca": _pem(ca),
        "ssh_public": public,
    }


def test_import_a_docker_machine_store_and_keep_using_its_engines(new_machine, tmp_path):
    host = new_machine()
    host.get_driver().create(host)
    host.save()
    store = tmp_path / "store"
    name, legacy = f"dm-{uuid.uuid4().hex[:5]}", f"vb-{uuid.uuid4().hex[:5]}"
    files = _docker_machine_store(store, name, host.ip, "generic")
    _docker_machine_store(store, legacy, host.ip, "virtualbox")
    configure_as_docker_machine(host, files)

    out = StringIO()
    call_command("machine", "import-docker-machine", "--storage-path", str(store), stdout=out)
    text = out.getvalue()
    assert f"{name}: imported, engine tcp://{host.ip}:2376" in text
    assert f"{legacy}: imported" in text and "'virtualbox' is not one of dockerdash's" in text
    assert text.rstrip().endswith("Imported 2 machines")
    imported = Machine.objects.get(name=name)
    assert (imported.driver.kind, imported.engine_labels) == ("generic", ["env=lab"])
    assert Machine.objects.get(name=legacy).driver.kind == "none"

    # `machine env` keeps working against the same engine, with no re-provisioning.
    env_out = StringIO()
    call_command("machine", "env", name, stdout=env_out)
    exports = dict(re.findall(r'^export (\w+)="(.*)"$', env_out.getvalue(), re.M))
    assert exports["DOCKER_HOST"] == f"tcp://{host.ip}:2376"
    version = subprocess.run(
        [DOCKER, "version", "--format", "{{.Server.Version}}"],
        env={**os.environ, **exports},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().startswith("20.10")
    # ... and so does the dashboard, from Python (strict about certificates since 3.13).
    runner.check_machine(imported)
    imported.refresh_from_db()
    assert imported.engine_reachable, imported.last_error
    # SSH with the store's id_rsa, its host key pinned on first contact.
    with SSHSession(imported.ip, 22, "root", imported.ssh_private_key) as s:
        assert s.check("hostname").strip() == host.name
    # A second import changes nothing and says why.
    again = StringIO()
    with pytest.raises(SystemExit):
        call_command(
            "machine",
            "import-docker-machine",
            "--storage-path",
            str(store),
            stdout=again,
            stderr=StringIO(),
        )
    assert "a machine of that name exists in dockerdash already" in again.getvalue()
