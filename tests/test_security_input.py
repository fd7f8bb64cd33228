"""Values that reach shells (`machine env`, the Connect panel's snippets, ssh and scp) are
refused by the model's validation on every way in (form, CLI, admin, import), and quoted
per shell on the way out anyway: checked by eval-ing the real output in the real shells."""

from __future__ import annotations

import html
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse

from machines.cli.sshargs import scp_argv, ssh_argv
from machines.lib import shellquote
from machines.models import Driver, Machine
from machines.pki import certs

from .fleet import REQUIRED, closed_port
from .helpers import MANAGE, run, user_env

# What shells act on, in a folder name (no '/'; single spaces, since tcsh's `eval \`...\``
# joins words with one; no braces, globs or '~', which tcsh refuses: see its own test).
WEIRD = "certs $(touch pwned) `touch pwned` ;touch pwned; 'q' \"dq\" !x \\b & | <y> %p% ^"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make system-deps installs it)"
        if REQUIRED:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def _eval(shell: str, script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_shell(shell), "-c", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- validation on the model: every way in ----------------------------------------------

REFUSED = [
    ("name", "trail\n"),
    ("name", "web;id"),
    ("name", "$(id)"),
    ("ip", "1.2.3.4;id$(id)"),
    ("ip", "-oProxyCommand=touch x"),
    ("ip", "192.0.2.1\n"),
    ("engine_url", 'tcp://h:2376"; touch /tmp/x; echo "'),
    ("engine_url", "tcp://h:2376;id"),
    ("engine_url", "tcp://h:2376\n"),
    ("engine_url", "tcp://$(id):2376"),
    ("engine_url", "tcp://h"),
    ("engine_url", "ssh://-oProxyCommand=x@h"),
    ("engine_url", "unix:///var/run/$(id).sock"),
    ("engine_url", "http://h:2376"),
    ("ssh_user", "-oProxyCommand=touch x"),
    ("ssh_user", "root;id"),
    ("ssh_user", "root\n"),
    ("engine_opts", ["-H tcp://0.0.0.0:2375"]),
    ("engine_opts", ["--host=tcp://0.0.0.0:2375"]),
    ("engine_opts", ["--log-level=warn -H tcp://0.0.0.0:2375"]),
    ("engine_opts", ["--tlsverify=false"]),
    ("engine_opts", ["--tls"]),
    ("engine_opts", ["--tlskey", "/tmp/k"]),
    ("engine_opts", ["--debug -DH tcp://0.0.0.0:2375"]),
    ("engine_labels", ["a=b\nExecStartPre=/bin/touch /tmp/x"]),
    ("engine_labels", ["a=b\x00"]),
    ("engine_env", ["A=b\nExecStartPre=/bin/touch /tmp/x"]),
    ("engine_env", ["A=\x00"]),
]

ACCEPTED = [
    ("ip", "2001:db8::1"),
    ("ip", "docker-1.example.com"),
    ("engine_url", "tcp://[2001:db8::1]:2376"),
    ("engine_url", "ssh://deploy@docker-1.example.com:2222"),
    ("engine_url", "unix:///var/run/docker.sock"),
    ("ssh_user", "ubuntu"),
    ("engine_opts", ["--log-level=warn", "--default-ulimit nofile=1024:2048"]),
    ("engine_labels", ['note=has "quotes" $HOME 100%']),
]


def _machine(**fields) -> Machine:
    driver = Driver.objects.get_or_create(name="generic", defaults={"kind": "generic"})[0]
    return Machine(**{"name": "web-1", "driver": driver, "ip": "192.0.2.10", **fields})


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), REFUSED)
def test_the_model_refuses_what_a_shell_or_the_daemon_would_act_on(field, value):
    with pytest.raises(ValidationError) as refused:
        _machine(**{field: value}).full_clean()
    assert list(refused.value.message_dict) == [field]


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), ACCEPTED)
def test_the_model_accepts_real_addresses_users_and_flags(field, value):
    _machine(**{field: value}).full_clean()


@pytest.mark.django_db
def test_the_admin_form_refuses_an_engine_url_that_breaks_out(admin_user, generic_machine):
    admin_user.is_staff = admin_user.is_superuser = True
    request = RequestFactory().post("/")
    request.user = admin_user
    model_admin = admin.site._registry[Machine]
    form_class = model_admin.get_form(request, generic_machine)
    data = {
        name: field.prepare_value(getattr(generic_machine, name, None))
        for name, field in form_class.base_fields.items()
    }
    data |= {"driver": generic_machine.driver.pk, "created_at_0": "2026-01-01"}
    data |= {"created_at_1": "00:00:00", "engine_url": "tcp://h:2376;id"}
    form = form_class(data, instance=generic_machine)
    assert not form.is_valid()
    assert list(form.errors) == ["engine_url"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"opt-ip_address": "1.2.3.4;id$(id)"}, "Enter an IP address or a host name"),
        ({"opt-ssh_user": "-oProxyCommand=x"}, "Enter a user name"),
        ({"engine_opts": "--host=tcp://0.0.0.0:2375"}, "would change where the Docker API"),
        ({"engine_env": "A=1\nB"}, "is not of the form KEY=value"),
    ],
)
def test_the_create_form_refuses_them_too(admin_client_, overrides, message):
    data = {
        "name": "db-1",
        "driver": Driver.objects.get(name="generic").pk,
        "opt-ip_address": "192.0.2.20",
        "opt-ssh_user": "root",
        "opt-ssh_port": "22",
        "opt-engine_port": "2376",
    }
    response = admin_client_.post(reverse("machines:create"), data | overrides)
    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())
    assert not Machine.objects.exists()


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """`manage.py machine` as a user types it in bash, with a data folder of its own."""
    data = tmp_path_factory.mktemp("cli")
    environ = user_env(data)
    run(f"{MANAGE} migrate --noinput", environ)
    return lambda line: run(f"{MANAGE} {line}", environ, check=False)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "machine create -d none --url 'tcp://h:2376;id' x1",
            "Invalid options for the none driver: url: The engine URL 'tcp://h:2376;id' is not "
            "of the form tcp://HOST:PORT, ssh://[USER@]HOST[:PORT] or unix:///PATH",
        ),
        (
            "machine create -d generic --generic-ip-address '1.2.3.4;id$(id)' x2",
            "Invalid options for the generic driver: ip_address: Enter an IP address or a host",
        ),
        (
            "machine create -d none --url unix:///var/run/docker.sock $'trail\\n'",
            "Invalid machine name 'trail\\n'",
        ),
        (
            "machine create -d none --url unix:///var/run/docker.sock --engine-opt "
            "host=tcp://0.0.0.0:2375 x3",
            "would change where the Docker API listens or its TLS",
        ),
    ],
)
def test_the_cli_refuses_them_with_a_clear_error_and_creates_nothing(cli, line, message):
    done = cli(line)
    assert done.returncode == 1, done.stdout
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert cli("machine ls -q").stdout.strip() == ""


# -- `machine env`: eval-ed in the real shells -------------------------------------------


@pytest.fixture
def weird_certs(db, settings, tmp_path, monkeypatch) -> Path:
    """A provisioned machine whose client certificates are written under WEIRD, with a
    NO_PROXY full of shell syntax: both reach `machine env`'s output."""
    settings.CERTS_DIR = tmp_path / WEIRD
    machine = _machine(state=Machine.State.RUNNING)
    machine.save()
    certs.issue_server_cert(machine, certs.get_or_create_ca())
    machine.engine_url = "tcp://192.0.2.10:2376"
    machine.save()
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "localhost,$(touch pwned);`touch pwned`")
    (tmp_path / "cwd").mkdir()
    return tmp_path / "cwd"


def _env(*args: str) -> str:
    out = io.StringIO()
    call_command("machine", "env", *args, stdout=out)
    return out.getvalue()


def _expected(cwd: Path) -> list[str]:
    return [
        "1",
        "tcp://192.0.2.10:2376",
        str(cwd.parent / WEIRD / "web-1"),
        "web-1",
        "localhost,$(touch pwned);`touch pwned`,192.0.2.10",
    ]


PRINT = 'printf "%s\\n" "$DOCKER_TLS_VERIFY" "$DOCKER_HOST" "$DOCKER_CERT_PATH" '
PRINT += '"$DOCKER_MACHINE_NAME" "$NO_PROXY"'


@pytest.mark.parametrize(
    ("shell", "runs", "script"),
    [
        ("bash", "bash", 'eval "$(cat env.out)"; ' + PRINT),
        ("bash", "bash", "eval $(cat env.out); " + PRINT),  # docker-machine's hint, unquoted
        ("bash", "zsh", 'eval "$(cat env.out)"; ' + PRINT),
        ("fish", "fish", "eval (cat env.out); " + PRINT),
        ("fish", "fish", "cat env.out | source; " + PRINT),
        ("tcsh", "tcsh", "eval `cat env.out`; " + PRINT),
    ],
)
def test_env_output_sets_each_value_literally_in_the_real_shell(weird_certs, shell, runs, script):
    (weird_certs / "env.out").write_text(_env("web-1", "--shell", shell, "--no-proxy"))
    done = _eval(runs, script, weird_certs)
    assert done.stdout.splitlines() == _expected(weird_certs), done.stderr
    assert not (weird_certs / "pwned").exists()


def test_env_for_cmd_refuses_what_cmd_cannot_hold_and_emacs_quotes_it(weird_certs):
    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("machine", "env", "web-1", "--shell", "cmd", stdout=io.StringIO(), stderr=err)
    assert err.getvalue().startswith("Cannot write the environment for cmd: ")
    assert "cannot be written safely for cmd.exe" in err.getvalue()
    emacs = _env("web-1", "--shell", "emacs")
    path = str(weird_certs.parent / WEIRD / "web-1")
    escaped = path.replace("\\", "\\\\").replace('"', '\\"')
    assert f'(setenv "DOCKER_CERT_PATH" "{escaped}")\n' in emacs


@pytest.mark.django_db
def test_env_refuses_a_stored_url_that_would_break_out(settings, tmp_path):
    """A row written before validation existed (or behind dockerdash's back)."""
    settings.CERTS_DIR = tmp_path / "certs"
    machine = _machine(state=Machine.State.RUNNING)
    machine.save()
    certs.issue_server_cert(machine, certs.get_or_create_ca())
    bad = f'tcp://192.0.2.10:2376"; touch {tmp_path}/pwned; echo "'
    Machine.objects.filter(pk=machine.pk).update(engine_url=bad)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit):
        call_command("machine", "env", "web-1", "--shell", "bash", stdout=out, stderr=err)
    assert err.getvalue().startswith("'web-1' cannot be connected to: engine_url: The engine URL")
    _eval("bash", f"eval {shellquote.word('bash', out.getvalue())}", tmp_path)
    assert not (tmp_path / "pwned").exists()


# -- the Connect panel's snippets ----------------------------------------------------------


def _snippets(page: str) -> dict[str, str]:
    blocks = re.findall(r"<summary>([^<]+)</summary><pre class=\"copy\">(.*?)</pre>", page, re.S)
    return {summary: html.unescape(text) for summary, text in blocks}


@pytest.mark.django_db
def test_page_snippets_set_values_literally_when_pasted(operator_client, generic_machine, tmp_path):
    marker = tmp_path / "pwned"
    certs.issue_server_cert(generic_machine, certs.get_or_create_ca())
    generic_machine.save()
    bad = f'tcp://h:2376"; touch {marker}; echo "$(touch {marker})`touch {marker}`\'!'
    Machine.objects.filter(pk=generic_machine.pk).update(engine_url=bad)
    page = operator_client.get(reverse("machines:detail", args=["web-1"])).content.decode()
    snippets = _snippets(page)
    home = str(tmp_path / "home $(touch pwned) `touch pwned` 'q'")
    folder = f"{home}/.docker/dockerdash/web-1"
    print_env = 'printf "%s\\n" "$DOCKER_HOST" "$DOCKER_CERT_PATH"'
    for shell, summary in (("bash", "bash / zsh"), ("zsh", "bash / zsh"), ("fish", "fish")):
        done = _eval(shell, snippets[summary] + "\n" + print_env, tmp_path, HOME=home)
        assert done.stdout.splitlines() == [bad, folder], (shell, done.stderr)
    docker = "docker() { printf '%s\\n' \"$@\"; }\n"
    done = _eval("bash", docker + snippets["docker context"], tmp_path, HOME=home)
    spec = f"host={bad},ca={folder}/ca.pem,cert={folder}/cert.pem,key={folder}/key.pem"
    assert done.stdout.splitlines() == [
        *("context", "create", "web-1", "--docker", spec),
        *("context", "use", "web-1"),
    ], done.stderr
    assert not list(tmp_path.glob("pwned*")) and not marker.exists()


def test_tcsh_refuses_what_its_eval_of_backquotes_would_expand(tmp_path):
    # Why: tcsh expands braces in the words of `...` before eval sees the quotes.
    (tmp_path / "env.out").write_text("setenv A '{a,b}';\n")
    done = _eval("tcsh", 'eval `cat env.out`; printf "%s\\n" "$A"', tmp_path)
    assert done.stdout != "{a,b}\n"
    for bad in ("{a,b}", "x ~root", "a *", "a[1]"):
        with pytest.raises(ValueError, match="cannot be written safely for tcsh"):
            shellquote.quote("tcsh", bad)


# -- quoting for the shells not installed here --------------------------------------------


def test_powershell_quoting_keeps_every_character_literal():
    value = 'it\'s "$x" `y`; $(z) \u2018smart\u2019'
    assert (
        shellquote.quote("powershell", value)
        == "'it''s \"$x\" `y`; $(z) \u2018\u2018smart\u2019\u2019'"
    )
    assert shellquote.set_line("powershell", "DOCKER_HOST", "tcp://192.0.2.10:2376") == (
        '$Env:DOCKER_HOST = "tcp://192.0.2.10:2376"\n'
    )
    assert shellquote.quote("powershell", shellquote.HOME, "\\.docker\\dockerdash\\web-1") == (
        '"$HOME\\.docker\\dockerdash\\web-1"'
    )
    assert shellquote.quote("powershell", shellquote.HOME, "\\$x") == "(\"$HOME\" + '\\$x')"
    for bad in ("a\nb", "a\rb", "a\x00b"):
        with pytest.raises(ValueError, match="control character"):
            shellquote.quote("powershell", bad)


# -- ssh and scp ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["ssh", "scp"])
def test_ssh_and_scp_refuse_a_stored_user_that_is_an_option(generic_machine, tmp_path, action):
    marker = tmp_path / "pwned"
    Machine.objects.filter(pk=generic_machine.pk).update(
        ssh_user=f"-oProxyCommand=touch {marker}", ssh_host_key=HOST_KEY, ip="127.0.0.1"
    )
    args = ["web-1", "true"] if action == "ssh" else [str(tmp_path), "web-1:/tmp/"]
    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("machine", action, *args, stdout=io.StringIO(), stderr=err)
    assert err.getvalue().startswith("Cannot reach web-1 over SSH: ssh_user: Enter a user name")
    assert not list(tmp_path.glob("pwned*"))


def test_ssh_argv_gives_the_user_by_l_and_ends_options_before_the_host(tmp_path):
    """Even a user that validation would refuse stays a user name for the real ssh."""
    marker = tmp_path / "pwned"
    machine = Machine(
        ip="127.0.0.1", ssh_port=closed_port(), ssh_user=f"-oProxyCommand=touch {marker}"
    )
    known = tmp_path / "known_hosts"
    known.write_text(f"127.0.0.1 {HOST_KEY}\n")
    argv = ssh_argv(machine, ["-i", str(tmp_path / "id")], known, ["true"])
    assert argv[argv.index("-l") + 1] == machine.ssh_user
    assert argv[-3:] == ["--", "127.0.0.1", "true"]
    assert argv.index("-l") < argv.index("--")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 255
    assert not list(tmp_path.glob("pwned*"))


def test_scp_argv_ends_options_before_the_operands(tmp_path):
    marker = tmp_path / "pwned"
    known = tmp_path / "known_hosts"
    known.write_text("")
    source = f"-oProxyCommand=touch {marker}"
    argv = scp_argv(closed_port(), [], known, False, [source, "root@127.0.0.1:/tmp/"])
    assert argv[-3:] == ["--", source, "root@127.0.0.1:/tmp/"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert not list(tmp_path.glob("pwned*"))
