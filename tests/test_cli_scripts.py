"""docker-machine's behaviour where scripts notice it (issue 20), on a real container machine
made and used through the command line, as a user's script would."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from machines.drivers.container.driver import INSTANCE_LABEL
from tests.dmstores import DockerMachineStore
from tests.helpers import MANAGE, ROOT, run, user_env, wait_until

pytestmark = pytest.mark.engine
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
M = f"{MANAGE} machine"
NOT_FOUND = re.compile(
    r'Docker machine "nope" does not exist\. Use "[^"]+ ls" to list machines\. '
    r'Use "[^"]+ create" to add a new one\.'
)


@pytest.fixture(scope="module")
def sh(tmp_path_factory, engine_url, host_images, parent):
    """A user's shell with a dockerdash data folder of its own and one container machine."""
    data = tmp_path_factory.mktemp("scripts")
    environ = user_env(data)

    def sh(script: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return run(script, {**environ, **kw}, check)

    sh.data, sh.engine = data, engine_url
    sh.name = f"scr-{uuid.uuid4().hex[:5]}"
    sh(f"{MANAGE} migrate --noinput")
    sh(f"{M} create -d container --container-engine {engine_url} {sh.name}")
    sh.ip = sh(f"{M} ip {sh.name}").stdout.strip()
    yield sh
    instance = (data / "instance.id").read_text().strip()
    for c in parent.containers.list(all=True, filters={"label": f"{INSTANCE_LABEL}={instance}"}):
        c.remove(force=True, v=True)


def _fails(done: subprocess.CompletedProcess) -> str:
    """The one line a failing command printed on stderr (exit status 1, no traceback)."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_ls_quiet_prints_nothing_when_nothing_matches(sh):
    assert sh(f"{M} ls -q --filter name=^nothing-like-it$ | wc -l").stdout.strip() == "0"
    assert sh(f"{M} ls -q --filter name=^nothing-like-it$").stdout == ""
    assert sh(f"{M} ls -q --filter name={sh.name}").stdout == f"{sh.name}\n"


def test_create_of_an_existing_name_fails_as_docker_machine(sh):
    done = sh(f"{M} create -d container --container-engine {sh.engine} {sh.name}", check=False)
    assert _fails(done) == f'Docker machine "{sh.name}" already exists'


@pytest.mark.parametrize(
    "command",
    ["inspect", "ip", "url", "status", "env", "config", "version", "ssh", "start", "tag"],
)
def test_an_unknown_name_gets_docker_machines_sentence(sh, command):
    assert NOT_FOUND.fullmatch(_fails(sh(f"{M} {command} nope", check=False)))


def test_inspect_format_runs_go_templates(sh):
    def inspect(template: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh(f"{M} inspect -f '{template}' {sh.name}", check=check)

    assert inspect("{{.DriverName}}").stdout == "container\n"
    assert inspect("{{json .DriverName}}").stdout == '"container"\n'
    assert inspect("{{.Driver.IPAddress}}").stdout.strip() == sh.ip
    assert inspect("{{.Driver.SSHPort}}").stdout.strip() == "22"
    driver = json.loads(inspect("{{prettyjson .Driver}}").stdout)
    assert driver["IPAddress"] == sh.ip and driver["MachineName"] == sh.name
    assert inspect('{{.Name}} {{if eq .DriverName "container"}}ok{{end}}').stdout == (
        f"{sh.name} ok\n"
    )
    assert inspect("{{.Driver.IPAddress | json}}").stdout.strip() == json.dumps(sh.ip)
    unknown = _fails(inspect("{{.Driver.Nope}}", check=False))
    assert unknown == (
        'template: :1:2: executing "" at <.Driver.Nope>: map has no entry for key "Nope"'
    )
    assert 'function "nope" not defined' in _fails(inspect("{{nope .Name}}", check=False))


def test_docker_machines_global_flags_parse(sh):
    dockerdash = Path(sys.executable).parent / "dockerdash"
    for flags in (
        "--native-ssh",
        "-D",
        "--debug",
        f"-s {sh.data / 'store'}",
        f"--storage-path {sh.data / 'store'}",
        "--tls-ca-cert /nonexistent/ca.pem --tls-client-key /nonexistent/key.pem",
        "--github-api-token x --bugsnag-api-token y",
    ):
        done = sh(f"{M} {flags} ls -q")
        assert done.stdout.split() == [sh.name], flags
        assert len(done.stderr.splitlines()) <= 2, done.stderr  # at most a note per flag
    assert sh(f"{dockerdash} --native-ssh ls -q").stdout.split() == [sh.name]
    note = sh(f"{M} --native-ssh status {sh.name}")
    assert note.stdout.strip() == "Running" and note.stderr.startswith("Note: --native-ssh")


def test_ssh_passes_vetted_options_before_the_host(sh):
    assert sh(f"{M} ssh {sh.name} -C -T -q hostname").stdout.strip() == sh.name
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tunnel = subprocess.Popen(
        [*MANAGE.split(), "machine", "ssh", sh.name, "-N", "-L", f"127.0.0.1:{port}:127.0.0.1:22"],
        cwd=ROOT,
        env=user_env(sh.data),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def banner() -> bytes:
            """the machine's sshd greeting through the forwarded port"""
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                    return c.recv(64).startswith(b"SSH-2.0-")
            except OSError:
                return False

        wait_until(banner, timeout=60, every=0.2)
    finally:
        tunnel.terminate()
        tunnel.wait(10)


def test_ssh_refuses_options_that_choose_what_runs_here(sh, tmp_path):
    marker = tmp_path / "pwned"
    touch = f"touch {marker}"
    for crafted in (
        f"-o 'ProxyCommand={touch}'",
        f"'-oProxyCommand={touch}'",
        f"-F {tmp_path / 'config'}",
        f"-i {tmp_path / 'key'}",
        "-J attacker@example.com",
        f"'-AoProxyCommand={touch}'",
        f"-L '8080:localhost:80 -oProxyCommand={touch}'",
        f"-L '-oProxyCommand={touch}'",
        f"-D '1080;{touch}'",
        f"-R '$({touch}):80:localhost:80'",
        "-L 99999:localhost:80",
        "-W localhost:22",
    ):
        line = _fails(sh(f"{M} ssh {sh.name} {crafted} true", check=False))
        assert "is not passed on" in line or "is not a forwarding spec" in line, line
    # A command after the options runs on the machine, never here.
    sh(f"{M} ssh {sh.name} -T 'mkdir -p {tmp_path} && {touch}'")
    assert sh(f"{M} ssh {sh.name} test -e {marker} && echo there").stdout.strip() == "there"
    assert not marker.exists()


def test_import_takes_the_host_of_a_none_machines_host_port(sh, tmp_path):
    store = DockerMachineStore(tmp_path / "store")
    edge, junk = f"edge-{uuid.uuid4().hex[:5]}", f"junk-{uuid.uuid4().hex[:5]}"
    # As docker-machine 0.16's none driver writes it: the URL's host:port as the IPAddress.
    for name, recorded in ((edge, f"{sh.ip}:2376"), (junk, f"{sh.ip}:2376:x")):
        config = store.add(name, ip=sh.ip, driver="none", URL=f"tcp://{sh.ip}:2376")
        config["Driver"]["IPAddress"] = recorded
        store.write_config(name, config)
    done = sh(f"{M} import-docker-machine --storage-path {store.root}", check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{edge}: imported" in done.stdout, done.stdout
    assert re.search(rf"{junk}: .*Enter an IP address or a host name", done.stdout), done.stdout
    assert sh(f"{M} ip {edge}").stdout.strip() == sh.ip
    assert sh(f"{M} inspect -f '{{{{.URL}}}}' {edge}").stdout.strip() == f"tcp://{sh.ip}:2376"
    assert sh(f"{M} ls -q --filter name=^{junk}$").stdout == ""
    sh(f"{M} rm -y {edge}")


def test_env_keeps_certificates_where_machine_storage_path_says(sh, tmp_path):
    store = tmp_path / "dm"
    env = sh(f"{M} env {sh.name}", MACHINE_STORAGE_PATH=str(store)).stdout
    cert_path = re.search(r'DOCKER_CERT_PATH="([^"]+)"', env)[1]
    folder = store / "machines" / sh.name
    assert cert_path == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    assert stat.S_IMODE(os.stat(folder / "key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    version = sh(
        f"eval \"$({M} env {sh.name})\" && {DOCKER} version --format '{{{{.Server.Version}}}}'",
        MACHINE_STORAGE_PATH=str(store),
    ).stdout.strip()
    assert version.startswith("20.10")
    flagged = sh(f"{M} -s {tmp_path / 'other'} config {sh.name}").stdout
    assert f'--tlscacert="{tmp_path / "other" / "machines" / sh.name / "ca.pem"}"' in flagged
    # Without the variable the certificates stay in dockerdash's data folder.
    plain = sh(f"{M} env {sh.name}").stdout
    assert f'DOCKER_CERT_PATH="{sh.data / "machines" / sh.name}"' in plain


def test_url_version_and_env_of_a_stopped_machine(sh):
    sh(f"{M} stop {sh.name}")
    try:
        assert _fails(sh(f"{M} url {sh.name}", check=False)) == "Host is not running"
        assert _fails(sh(f"{M} version {sh.name}", check=False)) == "Host is not running"
        assert "Host is not running" in _fails(sh(f"{M} env {sh.name}", check=False))
    finally:
        sh(f"{M} start {sh.name}")
    # Running again (a container restarted may get another address from its engine).
    sh.ip = sh(f"{M} ip {sh.name}").stdout.strip()
    assert sh(f"{M} url {sh.name}").stdout.strip() == f"tcp://{sh.ip}:2376"


def test_rm_without_a_terminal_is_no_and_rm_f_does_not_ask(sh):
    # Last: it removes the machine.
    line = _fails(sh(f"{M} rm {sh.name} < /dev/null", check=False))
    assert line == "Remove cancelled: no answer came (no terminal to ask)."
    assert sh(f"{M} ls -q").stdout.split() == [sh.name]
    removed = sh(f"{M} rm -f {sh.name} < /dev/null")
    assert f"Successfully removed {sh.name}" in removed.stdout
    assert sh(f"{M} ls -q").stdout == ""


def _create_status(sh, name: str) -> str:
    ops = json.loads(sh(f"{M} inspect {name}").stdout)["Operations"]
    return next(op["Status"] for op in ops if op["Kind"] == "create")


def test_a_create_outlives_its_reader_and_create_again_follows_one_left_pending(sh):
    """`create ... | true`: the reader is gone before the first line, and the machine is made
    all the same (its runner starts before anything is printed). A create left pending with
    no runner, as by a command killed before its runner started (here: asked for through
    the services in a shell, which runs nothing), is run and followed by `create NAME`."""
    gone, left = f"gone-{uuid.uuid4().hex[:5]}", f"left-{uuid.uuid4().hex[:5]}"
    sh(f"{M} create -d container --container-engine {sh.engine} {gone} | true")
    wait_until(lambda: _create_status(sh, gone) == "succeeded", timeout=180, every=1)

    script = (
        "from machines.services import machines as s\n"
        "from machines.services.drivers import driver_for\n"
        f"row, made = driver_for(None, 'container', {{'engine': {sh.engine!r}}})\n"
        f"s.create_from_input(None, {left!r}, row, made=made, options={{}}, engine={{}}, "
        "tags={}, via='cli')\n"
    )
    sh(f"{MANAGE} shell -c {shlex.quote(script)}")
    assert _create_status(sh, left) == "pending"
    resumed = sh(f"{M} create -d container --container-engine {sh.engine} {left}").stdout
    assert resumed.startswith(f"Following the create of {left}, not ended.\n[1/")
    assert resumed.rstrip().endswith("Done")
    assert sh(f"{M} status {left}").stdout.strip() == "Running"
    sh(f"{M} rm -y {gone} {left}")
