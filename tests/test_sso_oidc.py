"""OpenID Connect login through a real provider (npm's certified `oidc-provider`, run with
node by the test): "Log in with ..." in Chromium, the user made at first login with the
role their IdP group maps to, re-synced at the next login, the login audited with its
provider; password login switched off."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from machines.models import AuditEntry

from .browser import free_port
from .helpers import ROOT, process_env, wait_until

CACHE = Path(os.getenv("DOCKERDASH_TEST_CACHE", "/var/cache/dockerdash-test")) / "oidc-provider"
VERSION = "8.8.1"


def _installed() -> Path:
    """oidc-provider installed (once) into the test cache folder with npm."""
    package = CACHE / "node_modules" / "oidc-provider" / "package.json"
    if not package.exists() or json.loads(package.read_text())["version"] != VERSION:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", f"oidc-provider@{VERSION}"],
            cwd=CACHE,
            check=True,
            timeout=300,
        )
    return CACHE / "node_modules"


@pytest.fixture
def provider(tmp_path):
    """(issuer, users file, dashboard port): the provider knows the dashboard's callback."""
    modules = _installed()
    port, dashboard = free_port(), free_port()
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"carol": {"groups": ["dash-operators"]}}))
    # Node resolves packages beside the script: the script runs from a copy in the cache.
    script = CACHE / "provider.mjs"
    script.write_text((ROOT / "tests" / "oidc" / "provider.mjs").read_text())
    env = {
        **os.environ,
        "NODE_PATH": str(modules),
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": "dockerdash",
        "OIDC_CLIENT_SECRET": "test-secret-123",
        "OIDC_REDIRECT": f"http://127.0.0.1:{dashboard}/oidc/callback/",
        "OIDC_USERS": str(users),
    }
    log = open(tmp_path / "provider.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(["node", str(script)], env=env, stdout=log, stderr=subprocess.STDOUT)
    text = lambda: (tmp_path / "provider.log").read_text()  # noqa: E731
    wait_until(lambda: "listening" in text() or proc.poll() is not None, 30)
    assert proc.poll() is None, text()
    yield f"http://127.0.0.1:{port}", users, dashboard
    proc.terminate()
    proc.wait(10)


def _sso_login(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.click("text=Log in with Test IdP")
    # The provider's own pages: its login form, then its consent.
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    if page.locator("button[autofocus]").count():
        page.click("button[autofocus]")
    page.wait_for_url(f"{base_url}/")


@pytest.mark.django_db(transaction=True)
def test_a_user_logs_in_through_the_provider_with_the_mapped_role(provider, browser):
    from django.contrib.auth.models import User

    issuer, users, port = provider
    env = process_env(
        DOCKERDASH_OIDC_ISSUER=issuer,
        DOCKERDASH_OIDC_NAME="Test IdP",
        DOCKERDASH_OIDC_CLIENT_ID="dockerdash",
        DOCKERDASH_OIDC_CLIENT_SECRET="test-secret-123",
        DOCKERDASH_SSO_GROUP_MAP="dash-operators=role:operator;dash-admins=role:admin",
        DOCKERDASH_LOCAL_LOGIN="0",
    )
    from .helpers import Process

    server = Process(["serve", "--bind", f"127.0.0.1:{port}"], env, ready="dockerdash is serving")
    base_url = f"http://127.0.0.1:{port}"
    try:
        page = browser.new_page()
        page.goto(f"{base_url}/accounts/login/")
        assert page.locator("#id_password").count() == 0  # password login is off
        _sso_login(page, base_url, "carol")
        carol = User.objects.get(username="carol")
        assert [g.name for g in carol.groups.all()] == ["operator"]
        assert not carol.has_usable_password()
        login = AuditEntry.objects.filter(action="login", username="carol").latest("at")
        assert login.detail == "with OpenID Connect"
        # Moved to the admins' group at the provider: an admin at the next login.
        users.write_text(json.dumps({"carol": {"groups": ["dash-admins"]}}))
        page.context.clear_cookies()
        _sso_login(page, base_url, "carol")
        assert [g.name for g in carol.groups.all()] == ["admin"]
        # Out of every mapped group: no role at all at the next login.
        users.write_text(json.dumps({"carol": {"groups": []}}))
        page.context.clear_cookies()
        _sso_login(page, base_url, "carol")
        assert not carol.groups.exists()
        # A callback whose state this browser's session did not send is refused.
        page.context.clear_cookies()
        forged = page.request.get(f"{base_url}/oidc/callback/?code=stolen&state=forged")
        assert forged.url.startswith(f"{base_url}/accounts/login/") or forged.status == 400
        assert "sessionid" not in {c["name"] for c in page.context.cookies()}
        page.close()
    finally:
        server.kill()
