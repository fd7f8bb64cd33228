"""Deployment hardening as a new user gets it: debug off, static files still served, check
--deploy clean with a secret key and host names, logins throttled, password reset absent,
the data folder and the database private."""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import NoReverseMatch, reverse

from .browser import free_port
from .helpers import ROOT, Process, wait_until

ADMIN_PASSWORD = "first-admin-pw-2468"


def _clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Nothing of this machine's or the test run's settings: only what a user would set."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DOCKERDASH_DATA_DIR": str(data_dir),
        **extra,
    }


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_check_deploy_passes_with_only_a_secret_key_and_allowed_hosts(tmp_path):
    env = _clean_env(
        tmp_path / "data",
        DOCKERDASH_SECRET_KEY=secrets.token_urlsafe(50),
        DOCKERDASH_ALLOWED_HOSTS="dash.example.com",
    )
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("extra", "https"),
    [
        ({}, False),  # loopback names only: `make run`, plain HTTP on this machine
        ({"DOCKERDASH_ALLOWED_HOSTS": "dash.example.com"}, True),
        ({"DOCKERDASH_ALLOWED_HOSTS": "dash.example.com", "DOCKERDASH_HTTPS": "off"}, False),
        ({"DOCKERDASH_BEHIND_PROXY": "1"}, True),
    ],
)
def test_https_is_required_once_other_machines_reach_the_dashboard(tmp_path, extra, https):
    show = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS > 0)"
    )
    env = _clean_env(tmp_path / "data", **extra)
    result = _manage("shell", "--no-imports", "-c", show, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["False", *[str(https)] * 4]


def test_existing_data_folder_and_database_are_tightened(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    database = data / "dockerdash.sqlite3"
    for path in (database, data / "dockerdash.sqlite3-wal"):
        path.write_bytes(b"")
        path.chmod(0o644)
    result = _manage("check", env=_clean_env(data))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"The data folder {data} was open to other users (mode 0755)" in result.stderr
    assert "tightened it to 0700" in result.stderr
    assert _mode(data) == 0o700
    # SQLite removes the -wal file when the last connection closes; whatever is left is 0600.
    left = {path.name: oct(_mode(path)) for path in data.glob("dockerdash.sqlite3*")}
    assert left == dict.fromkeys(left, oct(0o600)) and database.name in left


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`make run` on a fresh clone: migrate, createadmin, serve, with nothing else set."""
    data = tmp_path_factory.mktemp("deploy") / "var"
    env = _clean_env(data, DOCKERDASH_ADMIN_PASSWORD=ADMIN_PASSWORD)
    for step in (["migrate", "--noinput"], ["createadmin"]):
        done = _manage(*step, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    process = Process(["serve", "--bind", f"127.0.0.1:{port}"], env, ready="dockerdash is serving")
    yield f"http://127.0.0.1:{port}", data
    process.kill()
    process.close()


def _logged_in(base_url: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    page = session.get(f"{base_url}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    form = {"csrfmiddlewaretoken": token, "username": "admin", "password": ADMIN_PASSWORD}
    response = session.post(f"{base_url}/accounts/login/", data=form, timeout=30)
    assert response.url == f"{base_url}/", response.text
    return session


def test_logged_in_user_gets_a_plain_404_not_the_debug_page(server):
    base_url, _ = server
    response = _logged_in(base_url).get(f"{base_url}/no-such-page/", timeout=30)
    assert response.status_code == 404
    assert "Not Found" in response.text
    assert "URLconf" not in response.text
    assert "machines:" not in response.text and "DEBUG = True" not in response.text


def test_static_files_are_served_with_debug_off(server):
    base_url, _ = server
    session = _logged_in(base_url)
    login_page = requests.get(f"{base_url}/accounts/login/", timeout=30).text
    css_url = re.search(r'<link rel="stylesheet" href="([^"]+)"', login_page).group(1)
    css = requests.get(f"{base_url}{css_url}", timeout=30)
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert css.content == (ROOT / "static/css/dockerdash.css").read_bytes()
    # The admin's own files come from the app, found where they are (no collectstatic).
    admin_css = session.get(f"{base_url}/static/admin/css/base.css", timeout=30)
    assert admin_css.status_code == 200


def test_data_folder_and_database_files_are_private(server):
    base_url, data = server
    _logged_in(base_url)  # the server has its database open, in WAL mode
    database = data / "dockerdash.sqlite3"
    files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    wait_until(lambda: all(path.exists() for path in files), 30)
    assert _mode(data) == 0o700
    assert {path.name: oct(_mode(path)) for path in files} == {
        path.name: oct(0o600) for path in files
    }


@pytest.mark.django_db
def test_password_reset_pages_do_not_exist():
    for name in ("password_reset", "password_reset_done", "password_change"):
        with pytest.raises(NoReverseMatch):
            reverse(name)
    for url in ("/accounts/password_reset/", "/accounts/reset/done/"):
        assert Client().get(url).status_code == 404, url
        assert Client().post(url, {"email": "a@example.com"}).status_code == 404, url


def _log_in(username: str, password: str, address: str = "127.0.0.1", admin: bool = False):
    client = Client(REMOTE_ADDR=address)
    url = reverse("admin:login" if admin else "login")
    response = client.post(url, {"username": username, "password": password})
    return response, "_auth_user_id" in client.session


@pytest.mark.django_db
def test_ten_failed_logins_lock_that_user_name_until_unlocked(viewer, operator):
    for attempt in range(9):
        response, _ = _log_in("viewer", f"wrong-{attempt}")
        assert response.status_code == 200
        assert "correct username and password" in response.content.decode()
    response, _ = _log_in("viewer", "wrong-9")
    assert response.status_code == 429
    # What axes keeps of the tries never includes a password.
    kept = "".join(AccessAttempt.objects.values_list("post_data", flat=True))
    assert "wrong-" not in kept

    response, logged_in = _log_in("viewer", "viewer-pw-1234")
    page = response.content.decode()
    assert (response.status_code, logged_in) == (429, False)
    assert "Too many failed logins for viewer" in page
    assert "locked for 15 minutes" in page
    assert "axes_reset_username" in page
    # The admin's login form is the same door.
    assert _log_in("viewer", "viewer-pw-1234", admin=True)[0].status_code == 429

    # Another user on the same address is not locked out.
    response, logged_in = _log_in("operator", "operator-pw-1234")
    assert (response.status_code, logged_in) == (302, True)

    call_command("axes_reset_username", "viewer")
    response, logged_in = _log_in("viewer", "viewer-pw-1234")
    assert (response.status_code, logged_in) == (302, True)


@pytest.mark.django_db
def test_the_admin_login_still_works():
    get_user_model().objects.create_superuser("root", password="root-pw-1357")
    response, logged_in = _log_in("root", "root-pw-1357", admin=True)
    assert (response.status_code, logged_in) == (302, True)


@pytest.mark.django_db
def test_an_address_is_locked_after_its_own_higher_limit(settings, viewer, operator):
    # A smaller address limit than the default 50, to keep the test short.
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 12
    for name in ("mallory", "eve", "trudy"):
        for attempt in range(4):
            assert _log_in(name, f"guess-{attempt}", "198.51.100.7")[0].status_code in (200, 429)
    response, logged_in = _log_in("viewer", "viewer-pw-1234", "198.51.100.7")
    assert (response.status_code, logged_in) == (429, False)
    # Those user names and other addresses are not locked: no single name reached 10.
    assert _log_in("viewer", "viewer-pw-1234", "198.51.100.8")[1]
    call_command("axes_reset_ip", "198.51.100.7")
    assert _log_in("operator", "operator-pw-1234", "198.51.100.7")[1]
