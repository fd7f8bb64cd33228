"""import-docker-machine at speed: progress lines, every machine checked concurrently (hosts
that never answer cost one timeout, not one each), and a `none` machine with TLS reached with
the store's CA and client certificate, by the dashboard and by `machine env`."""

from __future__ import annotations

import os
import re
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command

from machines.dockermachine import importer as dmimport
from machines.models import Machine

from .dmstores import DockerMachineStore, configure_as_docker_machine
from .helpers import BlackHole

DOCKER = "/usr/local/bin/docker"


def _import(store: DockerMachineStore) -> str:
    out = StringIO()
    call_command("machine", "import-docker-machine", "--storage-path", str(store.root), stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_progress_and_hosts_that_never_answer_cost_one_timeout(tmp_path, monkeypatch, settings):
    monkeypatch.setattr(dmimport, "PROGRESS_EVERY", 2)
    settings.HEALTH_CHECK_TIMEOUT = 2
    hole = BlackHole(str(tmp_path / "hole.sock"))
    store = DockerMachineStore(tmp_path / "store")
    for i in range(5):
        store.add(f"silent-{i}", driver="none", URL=hole.address)
    try:
        out = _import(store)
    finally:
        hole.close()
    lines = out.splitlines()
    assert "… 2 of 5 folders read" in lines and "… 4 of 5 folders read" in lines
    assert "Checking 5 machines, 5 at a time" in lines
    assert "… 2 of 5 machines checked" in lines
    assert lines[-1] == "Imported 5 machines"
    silent = Machine.objects.get(name="silent-3")
    assert silent.engine_reachable is False
    assert "did not answer within 2 s" in silent.last_error


@pytest.mark.engine
@pytest.mark.django_db(transaction=True)
def test_a_none_machine_with_tls_is_reached_with_the_stores_certificates(new_machine, tmp_path):
    host = new_machine()
    host.get_driver().create(host, log=lambda _: None)
    host.save()
    store = DockerMachineStore(tmp_path / "store")
    url = f"tcp://{host.ip}:2376"
    store.add("attached-1", ip=host.ip, driver="none", URL=url)
    folder = store.folder("attached-1")
    # docker-machine's none driver keeps no server certificate: the engine's is elsewhere.
    files = {
        "ca": (store.certs / "ca.pem").read_text(),
        "server": (folder / "server.pem").read_text(),
        "server_key": (folder / "server-key.pem").read_text(),
    }
    (folder / "server.pem").unlink()
    (folder / "server-key.pem").unlink()
    configure_as_docker_machine(host, files)

    out = _import(store)
    assert re.search(rf"attached-1: imported, engine {url}, CA docker-machine-\w+", out), out
    machine = Machine.objects.get(name="attached-1")
    assert machine.driver.kind == "none" and not machine.tls_server_cert
    assert machine.engine_reachable, machine.last_error
    assert f"attached-1: Running, Docker {machine.docker_version}" in out

    env_out = StringIO()
    call_command("machine", "env", "attached-1", stdout=env_out)
    exports = dict(re.findall(r'^export (\w+)="(.*)"$', env_out.getvalue(), re.M))
    assert exports["DOCKER_HOST"] == url
    version = subprocess.run(
        [DOCKER, "version", "--format", "{{.Server.Version}}"],
        env={**os.environ, **exports},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == machine.docker_version
