"""`machine env` and `machine config`: docker-machine's output, byte for byte, per shell."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command

from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.models import Machine
from machines.pki import certs
from tests.fleet import make_machine
from tests.helpers import MANAGE, run, user_env
from tests.tinyimage import tiny_image_tar

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def machine(db, settings, tmp_path) -> Machine:
    settings.CERTS_DIR = tmp_path / "machines"
    machine = make_machine(name="web-1", ip="192.0.2.10", state=Machine.State.RUNNING)
    certs.issue_server_cert(machine, certs.get_or_create_ca())
    machine.engine_url = "tcp://192.0.2.10:2376"
    machine.save()
    return machine


def env(*args: str) -> str:
    out = io.StringIO()
    call_command("machine", "env", *args, stdout=out)
    return out.getvalue()


def test_bash_exports_as_docker_machine_did(machine, settings):
    path = settings.CERTS_DIR / "web-1"
    assert env("web-1", "--shell", "bash") == (
        'export DOCKER_TLS_VERIFY="1"\n'
        'export DOCKER_HOST="tcp://192.0.2.10:2376"\n'
        f'export DOCKER_CERT_PATH="{path}"\n'
        'export DOCKER_MACHINE_NAME="web-1"\n'
        "# Run this command to configure your shell: \n"
        "# eval $(python manage.py machine env --shell bash web-1)\n"
    )
    assert path.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in path.iterdir()} == {
        "ca.pem": 0o600,
        "cert.pem": 0o600,
        "key.pem": 0o600,
    }


@pytest.mark.parametrize(
    ("shell", "first", "hint"),
    [
        (
            "fish",
            'set -gx DOCKER_TLS_VERIFY "1";\n',
            "# eval (python manage.py machine env --shell fish web-1)\n",
        ),
        (
            "powershell",
            '$Env:DOCKER_TLS_VERIFY = "1"\n',
            "# & python manage.py machine env --shell powershell web-1 | Invoke-Expression\n",
        ),
        (
            "cmd",
            "SET DOCKER_TLS_VERIFY=1\n",
            "REM \t@FOR /f \"tokens=*\" %i IN ('python manage.py machine env --shell cmd web-1') "
            "DO @%i\n",
        ),
        (
            "tcsh",
            'setenv DOCKER_TLS_VERIFY "1";\n',
            ": eval `python manage.py machine env --shell tcsh web-1`\n",
        ),
        (
            "emacs",
            '(setenv "DOCKER_TLS_VERIFY" "1")\n',
            ';; (with-temp-buffer (shell-command "python manage.py machine env --shell emacs '
            'web-1" (current-buffer)) (eval-buffer))\n',
        ),
    ],
)
def test_other_shells(machine, shell, first, hint):
    out = env("web-1", "--shell", shell)
    assert out.startswith(first)
    assert out.endswith(hint)
    assert out.count("DOCKER_") == 4


def test_unset_and_no_proxy(machine, monkeypatch):
    assert env("--unset", "--shell", "bash") == (
        "unset DOCKER_TLS_VERIFY\n"
        "unset DOCKER_HOST\n"
        "unset DOCKER_CERT_PATH\n"
        "unset DOCKER_MACHINE_NAME\n"
        "# Run this command to configure your shell: \n"
        "# eval $(python manage.py machine env --unset --shell bash)\n"
    )
    assert env("-u", "--shell", "fish").startswith("set -e DOCKER_TLS_VERIFY;\n")
    assert env("-u", "--shell", "cmd").startswith("SET DOCKER_TLS_VERIFY=\n")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "localhost,.internal")
    out = env("web-1", "--shell", "bash", "--no-proxy")
    assert (
        'export DOCKER_MACHINE_NAME="web-1"\nexport NO_PROXY="localhost,.internal,192.0.2.10"\n'
        in (out)
    )
    monkeypatch.setenv("no_proxy", "192.0.2.10")
    assert 'export no_proxy="192.0.2.10"\n' in env("web-1", "--shell", "bash", "--no-proxy")


def test_config_prints_the_docker_flags(machine, settings):
    out = io.StringIO()
    call_command("machine", "config", "web-1", stdout=out)
    path = settings.CERTS_DIR / "web-1"
    assert out.getvalue() == (
        f'--tlsverify --tlscacert="{path}/ca.pem" --tlscert="{path}/cert.pem" '
        f'--tlskey="{path}/key.pem" -H=tcp://192.0.2.10:2376\n'
    )


def test_inspect_shows_the_certificates_and_no_key(machine):
    out = io.StringIO()
    call_command("machine", "inspect", "web-1", stdout=out)
    data = json.loads(out.getvalue())
    assert data["TLS"]["ServerCertSerial"] == machine.tls_server_serial
    assert data["TLS"]["ServerCertExpiresAt"] == machine.tls_server_expires_at.isoformat()
    assert "192.0.2.10" in data["TLS"]["ServerCertSANs"]
    assert data["TLS"]["ClientCertExpiresAt"]
    assert "PRIVATE KEY" not in out.getvalue()


def _fails(*args: str) -> str:
    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("machine", *args, stdout=io.StringIO(), stderr=err)
    return err.getvalue().strip()


def test_env_refuses_what_would_not_work(machine):
    assert _fails("env", "web-1", "-u") == (
        "Error: Expected no machine name when the -u flag is present"
    )
    machine.ip = "192.0.2.77"
    machine.save()
    assert _fails("env", "web-1").startswith(
        "The certificate of web-1's engine does not name its IP 192.0.2.77"
    )
    machine.state = Machine.State.STOPPED
    machine.save()
    assert _fails("env", "web-1") == (
        "Host is not running: web-1 is not running. Please start it in order to use the "
        "connection settings"
    )
    assert _fails("config", "nope").startswith('Docker machine "nope" does not exist. Use "')


@pytest.mark.engine
def test_a_bare_host_end_to_end_with_the_real_docker_cli(tmp_path, engine_url, host_images, parent):
    """create (Docker installed from Debian, TLS on 2376), then `eval "$(machine env)"` and
    `docker run` with the real docker CLI; without a client certificate the port refuses."""
    data = tmp_path / "data"
    environ = user_env(data)
    manage = MANAGE

    def sh(script: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(script, environ, check)

    name = f"cli-bare-{uuid.uuid4().hex[:6]}"
    sh(f"{manage} migrate --noinput")
    try:
        created = sh(
            f"{manage} machine create -d container --container-engine {engine_url} "
            f"--container-image {BARE_HOST_IMAGE} {name}"
        ).stdout
        assert "[5/9] Install Docker" in created and created.rstrip().endswith("Done")
        (tmp_path / "tiny.tar").write_bytes(tiny_image_tar())
        docker = shutil.which("docker") or "/usr/local/bin/docker"
        ran = sh(
            f'eval "$({manage} machine env {name})" && '
            f"{docker} import - tiny:1 < {tmp_path}/tiny.tar >/dev/null && "
            f"{docker} run --rm tiny:1 true && echo ran"
        )
        assert ran.stdout.strip() == "ran"
        ip = sh(f"{manage} machine ip {name}").stdout.strip()
        plain = sh(f"{docker} -H tcp://{ip}:2376 version", check=False)
        assert plain.returncode != 0
        cert_path = data / "machines" / name
        no_client_cert = sh(
            f"{docker} --tls --tlscacert {cert_path}/ca.pem -H tcp://{ip}:2376 version",
            check=False,
        )
        assert no_client_cert.returncode != 0
        assert "Server:" not in no_client_cert.stdout
    finally:
        sh(f"{manage} machine rm -y -f {name}", check=False)
