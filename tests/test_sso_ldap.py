"""LDAP login against a real slapd (Debian's, run by the test on a loopback port with a test
directory): bind, user search, group search, the same group mapping as single sign-on; a user
removed from a group loses its role (or team) at the next login."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest
from django.test import Client

from machines.models import AuditEntry
from machines.models.teams import Team

from .browser import free_port
from .helpers import ROOT, wait_until

BASE = "dc=test,dc=example"
ADMIN = f"cn=admin,{BASE}"


def _answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def slapd(tmp_path):
    if not shutil.which("slapd", path="/usr/sbin:/usr/bin"):
        pytest.fail("slapd is missing: make system-deps installs it (APT_PACKAGES)")
    (tmp_path / "data").mkdir()
    conf = tmp_path / "slapd.conf"
    conf.write_text((ROOT / "tests/ldap/slapd.conf.in").read_text().replace("@DIR@", str(tmp_path)))
    ldif = ROOT / "tests/ldap/directory.ldif"
    subprocess.run(["/usr/sbin/slapadd", "-f", conf, "-l", ldif], check=True, capture_output=True)
    port = free_port()
    url = f"ldap://127.0.0.1:{port}/"
    proc = subprocess.Popen(
        ["/usr/sbin/slapd", "-f", conf, "-h", url, "-d", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    wait_until(lambda: _answers(port) or proc.poll() is not None, 30)
    assert proc.poll() is None, "slapd did not start"
    yield url
    proc.terminate()
    proc.wait(10)


def _modify(url: str, change: str) -> None:
    subprocess.run(
        ["ldapmodify", "-x", "-H", url, "-D", ADMIN, "-w", "admin-secret-1"],
        input=change.encode(),
        check=True,
        capture_output=True,
    )


def _log_in() -> int:
    response = Client().post("/accounts/login/", {"username": "dave", "password": "dave-pw-1234"})
    return response.status_code


@pytest.mark.django_db
def test_a_directory_user_logs_in_with_the_mapped_role_and_loses_it_when_removed(slapd, settings):
    from django.contrib.auth.models import User

    from machines.services.ldapconf import ldap_settings

    env = {"DOCKERDASH_LDAP_USER_BASE": f"ou=people,{BASE}"}
    env["DOCKERDASH_LDAP_GROUP_BASE"] = f"ou=groups,{BASE}"
    for key, value in ldap_settings(env).items():
        setattr(settings, key, value)
    settings.AUTH_LDAP_SERVER_URI = slapd
    settings.AUTH_LDAP_BIND_DN, settings.AUTH_LDAP_BIND_PASSWORD = ADMIN, "admin-secret-1"
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "machines.services.ldapauth.LDAPBackend",
        "machines.services.sso.LocalBackend",
        "machines.services.rights.TeamBackend",
    ]
    settings.SSO_GROUP_MAP = "dash-operators=role:operator;web-team=team:web"
    Team.objects.create(name="web")

    assert _log_in() == 302  # to the machine list
    dave = User.objects.get(username="dave")
    assert dave.email == "dave@test.example"
    assert [g.name for g in dave.groups.all()] == ["operator"]
    assert list(dave.teams.values_list("name", flat=True)) == ["web"]
    login = AuditEntry.objects.filter(action="login", username="dave").latest("at")
    assert login.detail == "with LDAP"

    # Removed from the operators' group in the directory: no role at the next login.
    _modify(
        slapd,
        f"dn: cn=dash-operators,ou=groups,{BASE}\nchangetype: modify\n"
        f"delete: member\nmember: uid=dave,ou=people,{BASE}\n",
    )
    assert _log_in() == 302
    assert not dave.groups.exists()
    assert list(dave.teams.values_list("name", flat=True)) == ["web"]
    # A wrong password is refused, and recorded.
    bad = Client().post("/accounts/login/", {"username": "dave", "password": "wrong"})
    assert bad.status_code == 200
    assert AuditEntry.objects.filter(action="login-failed", username="dave").exists()
