"""The Teams page: machine groups with a live preview of what a selector matches (in
Chromium), teams with a role per group; every edit and refused attempt in the audit log
(refusals at most one a minute per user)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from machines.models import AuditEntry
from machines.models.teams import MachineGroup, Team, TeamRole

from .browser import log_in, serve
from .fleet import make_machine
from .helpers import team_member


@pytest.mark.django_db(transaction=True)
def test_the_selector_preview_counts_machines_as_the_admin_types(browser, admin_user):
    for i in range(3):
        make_machine("generic", name=f"prod-{i}", tags={"env": "prod"})
    make_machine("generic", name="dev-0", tags={"env": "dev"})
    process, base_url = serve()
    try:
        page = browser.new_page()
        log_in(page, base_url, "admin", "admin-pw-1234")
        page.goto(f"{base_url}/teams/")
        page.fill("#id_name", "production")
        page.type("#id_selector", "env=prod")
        page.wait_for_selector("text=This selector matches 3 machines")
        page.type("#id_machines", "dev-0")
        page.wait_for_selector("text=This selector matches 4 machines")
        page.fill("#id_selector", "env=")
        page.type("#id_selector", "=")
        page.wait_for_selector("#group-preview .error")
        page.fill("#id_selector", "env=prod")
        page.click("text=Save group")
        page.wait_for_selector("#group-1, [id^=group-]")
        group = MachineGroup.objects.get(name="production")
        assert group.selector == "env=prod"
        assert [m.name for m in group.machines.all()] == ["dev-0"]
        page.close()
    finally:
        process.kill()


@pytest.mark.django_db
def test_team_and_group_edits_are_audited_and_only_admins_may(admin_client_, operator_client):
    make_machine("generic", name="prod-0", tags={"env": "prod"})
    url = reverse("machines:teams")
    group = {"form": "group", "name": "prod", "selector": "env=prod", "machines": ""}
    assert operator_client.post(url, group).status_code == 403
    assert admin_client_.post(url, group).status_code == 302
    pk = MachineGroup.objects.get(name="prod").pk
    team_member("erin", "viewer", "other", "env=dev")
    team = {"form": "team", "name": "web", "members": "erin", f"role-{pk}": "operator"}
    admin_client_.post(url, team)
    assert TeamRole.objects.get(team__name="web", group__name="prod").role == "operator"
    assert [u.username for u in Team.objects.get(name="web").members.all()] == ["erin"]
    entries = AuditEntry.objects.filter(action="team").order_by("at")
    assert [(e.what, e.target) for e in entries] == [
        ("created machine group", "prod"),
        ("created team", "web"),
    ]
    assert "erin" in entries[1].detail and "prod: operator" in entries[1].detail
    page = admin_client_.get(url).content.decode()
    assert "operator of prod" in page
    preview = admin_client_.get(reverse("machines:group_preview") + "?selector=env%3Dprod")
    assert "This selector matches 1 machine: prod-0." in preview.content.decode()


@pytest.mark.django_db
def test_refused_attempts_are_audited_at_most_once_a_minute(client):
    from django.core.cache import cache

    cache.clear()
    make_machine("generic", name="secret-1", tags={"env": "b"})
    make_machine("generic", name="secret-2", tags={"env": "b"})
    client.force_login(team_member("mallory", "operator", "a", "env=a"))
    for name in ("secret-1", "secret-2", "secret-1"):
        assert client.get(reverse("machines:detail", args=[name])).status_code == 404
    refused = AuditEntry.objects.filter(action="refused")
    assert [(e.username, e.machine_name) for e in refused] == [("mallory", "secret-1")]


@pytest.mark.django_db
def test_a_team_admin_reads_the_audit_log_of_their_groups_machines_only(client):
    from machines.audit import log as audit

    a = make_machine("generic", name="shop-a", tags={"env": "a"})
    b = make_machine("generic", name="shop-b", tags={"env": "b"})
    audit.record(audit.Action.OPERATION, "restart", machine=a, machine_name=a.name)
    audit.record(audit.Action.OPERATION, "restart", machine=b, machine_name=b.name)
    audit.record(audit.Action.LOGIN, "logged in", username="someone")
    client.force_login(team_member("anna", "admin", "a", "env=a"))
    page = client.get(reverse("machines:audit")).content.decode()
    assert "shop-a" in page and "shop-b" not in page and "someone" not in page
    csv = client.get(reverse("machines:audit_export")).content.decode()
    assert "shop-a" in csv and "shop-b" not in csv
    # An operator of A (no admin role anywhere) has no audit page at all.
    client.force_login(team_member("otto", "operator", "a", "env=a"))
    assert client.get(reverse("machines:audit")).status_code == 403
