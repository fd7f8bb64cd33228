"""Shared by the client certificate tests: users, downloads, the real docker CLI."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from machines.models import Machine, Operation
from machines.operations import runner
from machines.pki import certs, usercerts


def login(username: str, role: str) -> Client:
    user = get_user_model().objects.create_user(username=username, password=f"{username}-pw-1")
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def provisioned(machine: Machine, *, trusted: bool = True) -> Machine:
    """What provisioning stores (server certificate; the users' CA in the engine's bundle),
    for tests that do not reach the host."""
    machine.ip = "192.0.2.10"
    machine.engine_url = "tcp://192.0.2.10:2376"
    certs.issue_server_cert(machine, certs.get_or_create_ca())
    machine.save()
    if trusted:
        usercerts.record_trust(machine, usercerts.get_or_create_ca())
    return machine


def download(client: Client, machine: Machine) -> dict[str, str]:
    response = client.get(reverse("machines:client_bundle", args=[machine.name]))
    assert response.status_code == 200, response.content.decode()
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        return {name: bundle.read(name).decode() for name in bundle.namelist()}


def unpack(files: dict[str, str], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, pem in files.items():
        (folder / name).write_text(pem)
    (folder / "key.pem").chmod(0o600)
    return folder


def docker_ps(folder: Path, machine: Machine) -> subprocess.CompletedProcess:
    """The real docker CLI with only these certificates (nothing from the environment)."""
    docker = shutil.which("docker") or "/usr/local/bin/docker"
    return subprocess.run(
        [
            docker,
            "--tlsverify",
            f"--tlscacert={folder}/ca.pem",
            f"--tlscert={folder}/cert.pem",
            f"--tlskey={folder}/key.pem",
            "-H",
            f"tcp://{machine.ip}:{machine.engine_port}",
            "ps",
            "--no-trunc",
            "--format",
            "{{.ID}}",
        ],
        env={"PATH": os.environ["PATH"], "HOME": str(folder)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_refused(result: subprocess.CompletedProcess) -> None:
    """The engine refused the client certificate in the TLS handshake."""
    assert result.returncode != 0
    assert "tls: bad certificate" in result.stderr, result.stderr


def run_pending_rotations() -> list[Operation]:
    done = []
    for op in Operation.objects.filter(
        kind=Operation.Kind.ROTATE_CLIENT_CA, status=Operation.Status.PENDING
    ):
        claimed = runner.claim(op.pk, worker="test")
        assert claimed is not None
        done.append(runner.run_claimed(claimed))
    return done


def log_text(op: Operation) -> str:
    return "\n".join(line.text for line in op.log_lines.order_by("seq"))
