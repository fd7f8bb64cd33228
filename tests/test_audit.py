"""The audit log: who did what, recorded where it happens (web, command line, admin, logins),
bounded like the login throttle, never holding a secret, filtered and exported on its page,
pruned by its retention setting, and never edited or deleted by the application."""

from __future__ import annotations

import csv
import getpass
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from machines.audit import log as audit
from machines.models import AuditEntry, Driver, Machine
from machines.services.roles import OPERATOR, VIEWER

from .clientcerts import download, provisioned
from .helpers import process_env, run

Action = AuditEntry.Action


def _clear() -> None:
    """Forget what the fixtures did (users and drivers made from the shell are recorded too)."""
    AuditEntry.objects.all().delete()


def _entries(**filters) -> list[tuple]:
    return list(
        AuditEntry.objects.filter(**filters)
        .order_by("id")
        .values_list("username", "via", "action", "what", "machine_name", "target")
    )


def _boss() -> Client:
    """A superuser in the admin (staff), as the one who changes users and accounts."""
    get_user_model().objects.create_superuser("boss", "boss@example.com", "boss-pw-1234")
    client = Client()
    client.force_login(get_user_model().objects.get(username="boss"))
    return client


@pytest.mark.django_db
def test_logins_failures_and_the_lockout_are_recorded_once_each(settings, operator):
    settings.AXES_FAILURE_LIMIT = 3
    _clear()
    client = Client()
    for _ in range(8):  # three failures lock the name; the five tries after are refused
        client.post(reverse("login"), {"username": "mallory", "password": "guess"})
    Client().post(reverse("login"), {"username": "operator", "password": "operator-pw-1234"})
    assert _entries() == [
        *[("mallory", "web", Action.LOGIN_FAILED, "login failed", "", "")] * 3,
        ("mallory", "web", Action.LOCKOUT, "locked out after repeated failed logins", "", ""),
        ("operator", "web", Action.LOGIN, "logged in", "", ""),
    ]
    assert set(AuditEntry.objects.values_list("address", flat=True)) == {"127.0.0.1"}
    assert "guess" not in str(list(AuditEntry.objects.values()))


@pytest.mark.django_db
def test_user_and_role_changes_in_the_admin_name_who_made_them(settings):
    boss = _boss()
    _clear()
    response = boss.post(
        reverse("admin:auth_user_add"),
        {
            "username": "newbie",
            "password1": "Long-enough-pw-1",
            "password2": "Long-enough-pw-1",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    newbie = get_user_model().objects.get(username="newbie")
    viewer, operator = Group.objects.get(name=VIEWER), Group.objects.get(name=OPERATOR)
    newbie.groups.add(viewer)  # from the shell, say: the OS user did it
    joined = timezone.localtime(newbie.date_joined)
    response = boss.post(
        reverse("admin:auth_user_change", args=[newbie.pk]),
        {
            "username": "newbie",
            "is_active": "on",
            "is_staff": "on",
            "groups": [operator.pk],
            "date_joined_0": joined.strftime("%Y-%m-%d"),
            "date_joined_1": joined.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    boss.post(reverse("admin:auth_user_delete", args=[newbie.pk]), {"post": "yes"})
    assert _entries(action=Action.USER) == [
        ("boss", "web", Action.USER, "created user", "", "newbie"),
        (getpass.getuser(), "cli", Action.USER, "added to role", "", "newbie"),
        ("boss", "web", Action.USER, "changed user", "", "newbie"),
        ("boss", "web", Action.USER, "removed from role", "", "newbie"),
        ("boss", "web", Action.USER, "added to role", "", "newbie"),
        ("boss", "web", Action.USER, "deleted user", "", "newbie"),
    ]
    changed = AuditEntry.objects.get(what="changed user")
    assert changed.detail == "is_staff: False → True"
    roles = AuditEntry.objects.filter(what__endswith="role").order_by("id")
    roles = roles.values_list("detail", flat=True)
    assert list(roles) == ["viewer", "viewer", "operator"]


@pytest.mark.django_db
def test_provider_account_changes_name_the_secrets_that_changed_never_their_values():
    boss = _boss()
    _clear()
    response = boss.post(
        reverse("admin:machines_driver_add"),
        {
            "name": "lab",
            "kind": "container",
            "settings": '{"engine": ""}',
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    account = Driver.objects.get(name="lab")
    account.secrets = {"tls_key": "-----BEGIN PRIVATE KEY----- very secret"}
    account.settings = {"engine": "unix:///run/other.sock"}
    account.save()
    account.delete()
    assert _entries(action=Action.DRIVER) == [
        ("boss", "web", Action.DRIVER, "added provider account", "", "lab (container)"),
        (
            getpass.getuser(),
            "cli",
            Action.DRIVER,
            "changed provider account",
            "",
            "lab (container)",
        ),
        (
            getpass.getuser(),
            "cli",
            Action.DRIVER,
            "removed provider account",
            "",
            "lab (container)",
        ),
    ]
    assert AuditEntry.objects.get(what="changed provider account").detail == (
        "setting engine, secret tls_key"
    )
    assert "very secret" not in str(list(AuditEntry.objects.values()))


@pytest.mark.django_db
def test_operations_and_certificate_downloads_from_the_web_name_the_user(
    operator_client, generic_machine
):
    _clear()
    operator_client.post(reverse("machines:action", args=[generic_machine.name, "restart"]))
    download(operator_client, provisioned(generic_machine))
    entries = AuditEntry.objects.order_by("id")
    assert _entries() == [
        ("operator", "web", Action.OPERATION, "restart", "web-1", ""),
        ("operator", "web", Action.CERTIFICATE, "downloaded client certificates", "web-1", ""),
    ]
    assert entries[0].operation.kind == "restart"
    assert entries[1].detail.startswith("serial ")


@pytest.mark.django_db(transaction=True)
def test_the_command_line_records_the_os_user(tmp_path):
    driver = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    Machine.objects.create(name="old-engine", driver=driver, engine_url="unix:///nonexistent.sock")
    _clear()
    run(
        "$PY manage.py machine rm -y -f old-engine".replace("$PY", ".venv/bin/python"),
        process_env(),
    )
    assert _entries(action=Action.OPERATION) == [
        (getpass.getuser(), "cli", Action.OPERATION, "remove", "old-engine", "")
    ]
    assert AuditEntry.objects.get().operation.status == "succeeded"


@pytest.mark.django_db
def test_the_page_filters_and_exports_what_it_shows(admin_client_, admin_user):
    _clear()
    now = timezone.now()
    for minutes, who, action, machine, target in [
        (50, "alice", Action.CONTAINER, "web-1", "=cmd|' /C calc'!A0"),
        (40, "bob", Action.TERMINAL, "web-1", "shop"),
        (30, "alice", Action.OPERATION, "db-1", ""),
        (5, "alice", Action.CONTAINER, "web-1", "shop"),
    ]:
        entry = audit.record(action, "did it", username=who, via="cli", machine_name=machine)
        AuditEntry.objects.filter(pk=entry.pk).update(
            at=now - timedelta(minutes=minutes), target=target
        )
    query = {
        "who": "alice",
        "action": Action.CONTAINER,
        "machine": "web-1",
        "since": (now - timedelta(minutes=60)).strftime("%Y-%m-%dT%H:%M"),
        "until": (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"),
    }
    page = admin_client_.get(reverse("machines:audit"), query).content.decode()
    assert page.count('<tr class="audit-') == 1 and "=cmd|" in page
    export = admin_client_.get(reverse("machines:audit_export"), query)
    assert export["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert rows[0][:5] == ["time", "user", "via", "address", "action"]
    assert [r[1:3] + r[4:5] + r[6:8] for r in rows[1:]] == [
        # A cell a spreadsheet would take for a formula is kept as text.
        ["alice", "cli", "container", "web-1", "'=cmd|' /C calc'!A0"]
    ]
    everything = admin_client_.get(reverse("machines:audit_export"))
    assert len(list(csv.reader(io.StringIO(everything.content.decode())))) == 5


@pytest.mark.django_db
def test_entries_are_never_edited_or_deleted_and_old_ones_are_pruned(settings, admin_user):
    _clear()
    entry = audit.record(Action.LOGIN, "logged in", user=admin_user)
    with pytest.raises(ValueError, match="cannot be changed"):
        entry.save()
    with pytest.raises(ValueError, match="retention"):
        entry.delete()
    old = audit.record(Action.LOGIN, "logged in", user=admin_user)
    AuditEntry.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=40))
    settings.AUDIT_RETENTION_DAYS = 0
    assert audit.prune() == 0
    settings.AUDIT_RETENTION_DAYS = 30
    assert audit.prune() == 1
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [entry.pk]


@pytest.mark.django_db
def test_only_admins_read_the_log_and_the_admin_shows_it_read_only(
    viewer_client, operator_client, admin_client_
):
    entry = audit.record(Action.LOGIN, "logged in", username="someone", via="web")
    for client in (viewer_client, operator_client):
        assert client.get(reverse("machines:audit")).status_code == 403
        assert client.get(reverse("machines:audit_export")).status_code == 403
    assert admin_client_.get(reverse("machines:audit")).status_code == 200
    boss = _boss()
    assert boss.get(reverse("admin:machines_auditentry_changelist")).status_code == 200
    assert boss.get(reverse("admin:machines_auditentry_add")).status_code == 403
    change = boss.post(reverse("admin:machines_auditentry_change", args=[entry.pk]), {"what": "x"})
    assert change.status_code == 403
    delete = boss.post(
        reverse("admin:machines_auditentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).what == "logged in"
