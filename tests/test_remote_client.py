"""The remote `dockerdash` client on a laptop: a fresh HOME, no database and no dashboard
files, only the URL and a token; the dashboard is a real `manage.py serve` on the real
engine. Output formats are the server CLI's own; `logs` (tail and follow) and `ssh` (the
host's root shell through the terminal websocket, with the token) included."""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dockerdash.client.api import ClientError
from dockerdash.client.websocket import WebSocket
from machines.drivers.container.driver import INSTANCE_LABEL

from .browser import free_port
from .helpers import MANAGE, Process, cancel_a_provision_on_a_frozen_host, run, user_env, wait_until
from .tinyimage import tiny_image_tar

DOCKERDASH = str(Path(sys.executable).parent / "dockerdash")
MAKE_USER = (
    "from django.contrib.auth.models import Group, User; "
    "u = User.objects.create_user('alice', password='alice-pw-1234'); "
    "u.groups.add(Group.objects.get(name='{role}'))"
)


@pytest.fixture
def dashboard(tmp_path, parent):
    """A dashboard of its own (data folder, database, runner) and an admin's token."""
    env = user_env(tmp_path / "server")
    run(f"{MANAGE} migrate --noinput", env)
    run(f"{MANAGE} shell -c {shlex.quote(MAKE_USER.format(role='admin'))}", env)
    token = run(
        f"{MANAGE} api_token create --user alice --scope admin --expires 1d", env
    ).stdout.strip()
    port = free_port()
    server = Process(["serve", "--bind", f"127.0.0.1:{port}"], env, ready="dockerdash is serving")
    yield f"http://127.0.0.1:{port}", token, env
    server.close()
    instance = (tmp_path / "server" / "instance.id").read_text().strip()
    for c in parent.containers.list(all=True, filters={"label": f"{INSTANCE_LABEL}={instance}"}):
        c.remove(force=True, v=True)


def laptop_env(home: Path) -> dict[str, str]:
    """A user's shell elsewhere: their own HOME, nothing of the dashboard's."""
    home.mkdir()
    keep = ("PATH", "LANG", "TERM")
    return {k: os.environ[k] for k in keep if k in os.environ} | {"HOME": str(home)}


def _laptop(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [DOCKERDASH, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.engine
def test_login_create_env_docker_run_rm_from_a_laptop(dashboard, tmp_path, engine_url, parent):
    url, token, server_env = dashboard
    laptop = laptop_env(tmp_path / "home")

    def dd(args: str, check: bool = True):
        return run(f"{DOCKERDASH} {args}", laptop, check, 600)

    logged = dd(f"login {url} --token {token}").stdout
    saved = tmp_path / "home" / ".config" / "dockerdash" / "client.json"
    assert f"token saved in {saved}" in logged
    assert saved.stat().st_mode & 0o777 == 0o600
    name = f"remote-{uuid.uuid4().hex[:6]}"
    created = dd(f"create -d container --container-engine {engine_url} --tag env=dev {name}")
    assert f"Creating machine {name} (container)..." in created.stdout
    assert created.stdout.rstrip().endswith("Done")
    assert dd(f"status {name}").stdout.strip() == "Running"

    # The same output as the server's own CLI.
    fmt = "{{.Name}} {{.DriverName}} {{.State}} {{.URL}} {{.Tags}} {{.Active}}"
    local = run(f"{MANAGE} machine ls --format {shlex.quote(fmt)}", server_env).stdout
    assert dd(f"ls --format {shlex.quote(fmt)}").stdout == local
    assert dd("ls").stdout == run(f"{MANAGE} machine ls", server_env).stdout
    remote_inspect = json.loads(dd(f"inspect {name}").stdout)
    assert remote_inspect == json.loads(run(f"{MANAGE} machine inspect {name}", server_env).stdout)

    # env: the user's own certificate in ~/.docker/dockerdash/NAME, then the real docker CLI.
    (tmp_path / "tiny.tar").write_bytes(tiny_image_tar())
    docker = shutil.which("docker") or "/usr/local/bin/docker"
    env_out = dd(f"env --shell bash {name}").stdout
    folder = tmp_path / "home" / ".docker" / "dockerdash" / name
    assert f'export DOCKER_CERT_PATH="{folder}"' in env_out
    assert (folder / "key.pem").stat().st_mode & 0o777 == 0o600
    ran = run(
        f'eval "$({DOCKERDASH} env {name})" && '
        f"{docker} import - tiny:1 < {tmp_path}/tiny.tar >/dev/null && "
        f"{docker} run --rm tiny:1 true && echo ran",
        laptop,
    )
    assert ran.stdout.strip() == "ran"

    # cancel: a provision waiting on the frozen host stops after its first step.
    host = parent.containers.get(f"dockerdash-{name}")
    cancel_a_provision_on_a_frozen_host(host, name, functools.partial(_laptop, laptop))
    nothing = dd(f"cancel {name}", check=False)
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == f"{name} has no operation under way."
    assert dd(f"status {name}").stdout.strip() == "Running"

    removed = dd(f"rm -y {name}")
    assert f"Successfully removed {name}" in removed.stdout
    assert name not in dd("ls -q").stdout


@pytest.mark.engine
def test_the_client_never_imports_django_and_refuses_in_words(dashboard, tmp_path):
    url, token, _ = dashboard
    laptop = laptop_env(tmp_path / "home")
    run(f"{DOCKERDASH} login {url} --token {token}", laptop)
    probe = (
        "import atexit, sys; "
        "atexit.register(lambda: print('django' in sys.modules, file=sys.stderr)); "
        "from dockerdash.cli import main; main(['ls', '-q'])"
    )
    done = run(f"{sys.executable} -c {shlex.quote(probe)}", laptop, check=False)
    assert done.returncode == 0 and done.stderr.strip() == "False", done.stderr
    scp = run(f"{DOCKERDASH} scp a:/x b:/y", laptop, check=False)
    assert scp.returncode == 1
    assert scp.stderr.strip() == "scp stays on the dashboard's server: run `dockerdash scp` there."
    missing = run(f"{DOCKERDASH} status nope", laptop, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "Error: Host does not exist: 'nope'."
    bad = run(f"{DOCKERDASH} login {url} --token ddt_000000000000_{'x' * 43}", laptop, False)
    assert bad.stderr.strip() == (
        "Error: This API token is not valid: mint one on the API tokens page."
    )


@pytest.mark.engine
def test_containers_through_the_api_on_a_real_engine(db, operator, parent, engine_url):
    """A container's log tail and an action on it, through the API, on a real engine."""
    from django.test import Client

    from machines.models import Container
    from machines.services import tokens

    from .fleet import make_machine

    parent.api.import_image_from_data(
        tiny_image_tar(("echo", "sleep")), repository="dockerdash-test/echo", tag="1"
    )
    box = parent.containers.run(
        "dockerdash-test/echo:1", ["/bin/echo", "hello from the api"], detach=True,
        labels={"dockerdash.test": "api"},
    )  # fmt: skip
    try:
        box.wait(timeout=30)
        machine = make_machine("none", engine_url=engine_url, state="running")
        Container.objects.create(machine=machine, container_id=box.id, name=box.name)
        _, secret = tokens.mint(operator, "ops", "operate")
        api = Client(headers={"Authorization": f"Bearer {secret}"})
        base = f"/api/v1/machines/{machine.name}/containers"
        assert [c["name"] for c in api.get(base).json()] == [box.name]
        logs = api.get(f"{base}/{box.id}/logs", {"tail": 5})
        assert logs.status_code == 200, logs.content
        assert logs.json()["text"] == "hello from the api\n"
        removed = api.post(f"{base}/{box.id}/remove")
        assert removed.status_code == 200, removed.content
        assert removed.json()["detail"].startswith(("Removed", "Removing"))
        from .helpers import wait_until

        wait_until(lambda: not parent.containers.list(all=True, filters={"id": box.id}))
    finally:
        for c in parent.containers.list(all=True, filters={"label": "dockerdash.test=api"}):
            c.remove(force=True)


@pytest.mark.engine
def test_scoped_tokens_against_the_real_server(dashboard, tmp_path, engine_url):
    """A read token limited to env=prod, from a laptop: it sees prod only, cannot act, and
    stops working once revoked; each refusal is one sentence."""
    url, admin_token, server_env = dashboard
    admin = laptop_env(tmp_path / "admin-home")
    run(f"{DOCKERDASH} login {url} --token {admin_token}", admin)
    for name, env in (("prod-1", "prod"), ("dev-1", "dev")):
        run(f"{DOCKERDASH} create -d none --url {engine_url} --tag env={env} {name}", admin)
    reader = run(
        f"{MANAGE} api_token create --user alice --scope read --selector env=prod --expires 1h",
        server_env,
    ).stdout.strip()
    laptop = laptop_env(tmp_path / "home")
    run(f"{DOCKERDASH} login {url} --token {reader}", laptop)
    assert run(f"{DOCKERDASH} ls -q", laptop).stdout.split() == ["prod-1"]
    acted = run(f"{DOCKERDASH} restart prod-1", laptop, check=False)
    assert acted.returncode == 1
    assert acted.stderr.strip() == (
        "Only operators and admins act on machines: this token or its user is read-only."
    )
    hidden = run(f"{DOCKERDASH} status dev-1", laptop, check=False)
    assert hidden.stderr.strip() == "Error: Host does not exist: 'dev-1'."
    run(f"{MANAGE} api_token revoke --all --user alice", server_env)
    refused = run(f"{DOCKERDASH} ls", laptop, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "Error: This API token was revoked: mint a new one on the API tokens page."
    )


SCRIPT = "echo one; echo two >&2; echo three; sleep 4; echo four; sleep 1; echo five"
NOT_ADMIN = "Error: Only admins open a root shell on a host: this token or its user is not admin."


def _login(url: str, token: str, home) -> dict[str, str]:
    env = laptop_env(home)
    run(f"{DOCKERDASH} login {url} --token {token}", env)
    return env


@pytest.mark.engine
def test_logs_tail_and_follow_from_a_laptop(dashboard, tmp_path, parent, engine_url):
    url, token, _ = dashboard
    laptop = _login(url, token, tmp_path / "home")
    machine = f"logs-{uuid.uuid4().hex[:6]}"
    run(f"{DOCKERDASH} create -d none --url {engine_url} {machine}", laptop)
    parent.api.import_image_from_data(
        tiny_image_tar(("sh", "sleep")), repository="dockerdash-test/sh", tag="1"
    )
    box = parent.containers.run(
        "dockerdash-test/sh:1", ["/bin/sh", "-c", "sleep 5; " + SCRIPT], detach=True,
        labels={"dockerdash.test": "logs"}, name=f"printer-{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    try:
        # The dashboard lists the engine's containers once its watcher has seen this one.
        wait_until(
            lambda: run(f"{DOCKERDASH} logs {machine} {box.name}", laptop, False).returncode == 0,
            60,
            0.5,
        )
        follow = subprocess.Popen(
            [DOCKERDASH, "logs", "-f", machine, box.name],
            env=laptop,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = follow.communicate(timeout=90)
        # Every line once, in order, and the end of the container ends the command.
        assert follow.returncode == 0, err
        box.reload()
        assert box.status == "exited"
        # The engine orders stdout and stderr by its own times: as `docker logs` prints them.
        assert out == box.logs().decode()
        assert sorted(out.splitlines()) == sorted(["one", "two", "three", "four", "five"])
        tail = run(f"{DOCKERDASH} logs --tail 2 {machine} {box.id[:12]}", laptop).stdout
        assert tail == box.logs(tail=2).decode() == "four\nfive\n"  # as `docker logs --tail`
        missing = run(f"{DOCKERDASH} logs {machine} nope", laptop, False)
        assert missing.returncode == 1
        assert missing.stderr.strip() == f"Error: No such container on {machine}: 'nope'."
    finally:
        for c in parent.containers.list(all=True, filters={"label": "dockerdash.test=logs"}):
            c.remove(force=True)


def _token(server_env, user: str, scope: str) -> str:
    command = f"{MANAGE} api_token create --user {user} --scope {scope} --expires 1h"
    return run(command, server_env).stdout.strip()


def _refused_handshake(url: str, headers: dict[str, str]) -> str:
    with pytest.raises(ClientError) as refused:
        WebSocket(url, headers)
    return str(refused.value)


@pytest.mark.engine
def test_ssh_from_a_laptop_through_the_terminal_socket(dashboard, tmp_path, engine_url):
    url, token, server_env = dashboard
    admin = _login(url, token, tmp_path / "admin")
    name = f"ssh-{uuid.uuid4().hex[:6]}"
    run(f"{DOCKERDASH} create -d container --container-engine {engine_url} {name}", admin)

    shell = run(f"echo 'uname -n; exit' | {DOCKERDASH} ssh {name}", admin, timeout=120)
    assert name in [line.strip() for line in shell.stdout.splitlines()], shell.stdout
    audited = (
        run(
            f"{MANAGE} shell -c "
            + shlex.quote(
                "from machines.models import AuditEntry as A; "
                "e = A.objects.filter(action='terminal').latest('pk'); "
                "print(e.username, e.via, e.machine_name, e.api_token is not None, e.what)"
            ),
            server_env,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert audited == f"alice api {name} True root shell on the host"

    # Read and operate tokens of the admin, and a viewer's token: one sentence each.
    make_viewer = (
        "from django.contrib.auth.models import Group, User; "
        "User.objects.create_user('bob', password='bob-pw-12345')"
        ".groups.add(Group.objects.get(name='viewer'))"
    )
    run(f"{MANAGE} shell -c {shlex.quote(make_viewer)}", server_env)
    for who, scope in (("alice", "read"), ("alice", "operate"), ("bob", "read")):
        laptop = _login(url, _token(server_env, who, scope), tmp_path / f"{who}-{scope}")
        refused = run(f"echo 'uname -n; exit' | {DOCKERDASH} ssh {name}", laptop, False, 60)
        assert (refused.returncode, refused.stderr.strip()) == (1, NOT_ADMIN), refused.stdout

    # A token only on the shell's route, and never with cookies; the browser's way (session
    # and Origin) is tests/test_terminal.py's and test_access.py's.
    machine_id = (
        run(
            f"{MANAGE} shell -c "
            + shlex.quote(
                f"from machines.models import Machine; print(Machine.objects.get(name='{name}').pk)"
            ),
            server_env,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    ws = url.replace("http://", "ws://")
    bearer = {"Authorization": f"Bearer {token}"}
    assert _refused_handshake(f"{ws}/ws/machines/{machine_id}/", bearer).startswith(
        "The server refused the websocket (403"
    )
    with_cookie = bearer | {"Cookie": "sessionid=x"}
    shell_url = f"{ws}/ws/machines/{machine_id}/shell/"
    assert _refused_handshake(shell_url, with_cookie).startswith(
        "The server refused the websocket (403"
    )
    run(f"{MANAGE} api_token revoke --all --user alice", server_env)
    revoked = run(f"echo exit | {DOCKERDASH} ssh {name}", admin, False, 60)
    assert revoked.stderr.strip() == (
        "Error: This API token was revoked: mint a new one on the API tokens page."
    )
