"""Round three of the audit log and the admin: refusals (403s, refused sockets such as an
operator trying the host shell, a refused bulk rm) recorded at most ten a minute per user,
tag edits, every change made in the Django admin, and permissions granted directly. A staff
operator (or admin) sees machines in the admin but cannot change them: no role holds
change_machine, and the machine admin takes changes from superusers alone."""

from __future__ import annotations

import getpass

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from machines.models import AuditEntry, Driver, Machine
from machines.models.teams import Team
from machines.services.roles import ADMIN, OPERATOR, ensure_roles
from tests.helpers import MANAGE, process_env, run, team_member
from tests.sockets import refused

Action = AuditEntry.Action


@pytest.fixture(autouse=True)
def _fresh_limits():
    cache.clear()  # the refusal counters of earlier tests
    yield
    cache.clear()


def _machine(name: str = "web-1", **fields) -> Machine:
    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    return Machine.objects.create(
        name=name,
        driver=none,
        engine_url="tcp://10.0.0.5:2376",
        state="running",
        last_checked=timezone.now(),
        **fields,
    )


def _staff(role: str) -> tuple[object, Client]:
    user = get_user_model().objects.create_user(
        f"{role}-staff", password="pw-1234-long", is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return user, client


def _change(client: Client, machine: Machine, engine_url: str):
    return client.post(
        reverse("admin:machines_machine_change", args=[machine.pk]),
        {"name": machine.name, "driver": machine.driver_id, "engine_url": engine_url,
         "state": "running", "engine_port": 2376, "ssh_user": "root", "ssh_port": 22,
         "tags": "{}", "driver_options": "{}", "created_at_0": "2026-01-01",
         "created_at_1": "00:00:00"},
    )  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("role", [OPERATOR, ADMIN])
def test_staff_roles_see_machines_in_the_admin_but_cannot_change_them(role):
    user, client = _staff(role)
    machine = _machine()
    assert not user.has_perm("machines.change_machine")
    page = client.get(reverse("admin:machines_machine_change", args=[machine.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert _change(client, machine, "unix:///var/run/docker.sock").status_code == 403
    machine.refresh_from_db()
    assert machine.engine_url == "tcp://10.0.0.5:2376"
    delete = reverse("admin:machines_machine_delete", args=[machine.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Machine.objects.filter(pk=machine.pk).exists()

    # Even granted change_machine directly, the row stays for superusers; the grant is recorded.
    user.user_permissions.add(Permission.objects.get(codename="change_machine"))
    user = get_user_model().objects.get(pk=user.pk)
    assert _change(client, machine, "unix:///var/run/docker.sock").status_code == 403
    granted = AuditEntry.objects.get(action=Action.PERMISSION)
    assert (granted.what, granted.target) == ("granted permissions to user", user.username)
    assert granted.detail == "machines.change_machine"
    refusals = AuditEntry.objects.filter(action=Action.REFUSED, username=user.username)
    assert refusals.filter(what__startswith="refused POST /admin/machines/machine/").count() == 3


def _user_form(user, **fields) -> dict:
    return {"username": user.username, "email": user.email, "is_active": "on",
            "last_login_0": "", "last_login_1": "", "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00", "groups": [g.pk for g in user.groups.all()],
            **fields}  # fmt: skip


@pytest.mark.django_db
def test_an_admin_manages_accounts_but_cannot_make_or_take_over_a_superuser():
    """The admin role holds auth.change_user (admins manage users): in the Django admin it
    deactivates an operator, but cannot tick superuser status (its own or another's), grant
    single permissions, or change, reset the password of or delete a superuser's account."""
    admin_user, client = _staff(ADMIN)
    root = get_user_model().objects.create_superuser("root", password="root-pw-1234")
    operator = get_user_model().objects.create_user("op", password="op-pw-1234-long")
    own = reverse("admin:auth_user_change", args=[admin_user.pk])
    changed = client.post(own, _user_form(admin_user, is_staff="on", is_superuser="on",
                                          user_permissions=[Permission.objects.get(
                                              codename="change_machine").pk]))  # fmt: skip
    assert changed.status_code == 302, changed.content.decode()[:3000]
    admin_user.refresh_from_db()
    assert not admin_user.is_superuser and not admin_user.user_permissions.exists()
    assert not admin_user.has_perm("machines.change_machine")

    form = {**_user_form(operator), "is_superuser": "on"}
    del form["is_active"]  # unticked
    done = client.post(reverse("admin:auth_user_change", args=[operator.pk]), form)
    assert done.status_code == 302, done.content.decode()[:3000]
    operator.refresh_from_db()
    assert not operator.is_active and not operator.is_superuser

    page = client.get(reverse("admin:auth_user_change", args=[root.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    takeover = client.post(reverse("admin:auth_user_change", args=[root.pk]),
                           {**_user_form(root), "is_active": ""})  # fmt: skip
    assert takeover.status_code == 403
    password = reverse("admin:auth_user_password_change", args=[root.pk])
    reset = client.post(password, {"password1": "mine-now-1234", "password2": "mine-now-1234"})
    assert reset.status_code == 403
    delete = reverse("admin:auth_user_delete", args=[root.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    root.refresh_from_db()
    assert root.is_active and root.check_password("root-pw-1234")


@pytest.mark.django_db
def test_a_superusers_admin_changes_are_audited_by_field_never_by_value():
    root = get_user_model().objects.create_superuser("root", password="root-pw-1234")
    client = Client()
    client.force_login(root)
    machine = _machine()
    AuditEntry.objects.all().delete()
    response = _change(client, machine, "tcp://10.0.0.6:2376")
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = AuditEntry.objects.get(action=Action.ADMIN)
    assert (entry.username, entry.what, entry.machine_name) == (
        "root",
        "admin: changed machine",
        "web-1",
    )
    assert "Engine url" in entry.detail.split(", ") and "10.0.0.6" not in entry.detail

    driver = Driver.objects.get(name="none")
    client.post(
        reverse("admin:machines_driver_change", args=[driver.pk]),
        {"name": "none-2", "kind": "none", "settings": "{}", "created_at_0": "2026-01-01",
         "created_at_1": "00:00:00"},
    )  # fmt: skip
    assert AuditEntry.objects.filter(action=Action.ADMIN, what="admin: changed driver").exists()
    client.post(reverse("admin:machines_machine_delete", args=[machine.pk]), {"post": "yes"})
    deleted = AuditEntry.objects.get(what="admin: deleted machine")
    assert deleted.target == "web-1"


@pytest.mark.django_db
def test_refused_requests_and_a_refused_bulk_rm_are_recorded_at_most_ten_a_minute(
    viewer_client, operator_client
):
    machine = _machine()
    AuditEntry.objects.all().delete()
    bulk = operator_client.post(reverse("machines:bulk_request"), {"action": "rm", "q": ""})
    assert bulk.status_code == 403
    entry = AuditEntry.objects.get(action=Action.REFUSED)
    assert (entry.username, entry.what) == ("operator", "refused POST /bulk/")
    assert entry.detail == "Only admins remove machines."

    restart = reverse("machines:action", args=[machine.name, "restart"])
    for _ in range(30):
        assert viewer_client.post(restart).status_code == 403
    viewer_refusals = AuditEntry.objects.filter(action=Action.REFUSED, username="viewer")
    assert viewer_refusals.count() == 10
    assert viewer_refusals.first().what == f"refused POST {restart}"


@pytest.mark.django_db(transaction=True)
async def test_an_operator_refused_the_host_shell_is_recorded(operator):
    from asgiref.sync import sync_to_async

    machine = await sync_to_async(_machine)()
    assert await refused(operator, f"/ws/machines/{machine.pk}/shell/")
    entry = await AuditEntry.objects.aget(action=Action.REFUSED)
    assert (entry.username, entry.what) == (
        "operator",
        f"refused socket /ws/machines/{machine.pk}/shell/",
    )


@pytest.mark.django_db
def test_tag_edits_are_recorded_with_what_changed(operator_client):
    machine = _machine(tags={"env": "test", "old": "1"})
    AuditEntry.objects.all().delete()
    response = operator_client.post(
        reverse("machines:tags", args=[machine.name]), {"tags": "env=prod team=ops"}
    )
    assert response.status_code == 200
    entry = AuditEntry.objects.get(action=Action.TAGS)
    assert (entry.username, entry.machine_name, entry.what) == ("operator", "web-1", "changed tags")
    assert entry.detail == "env=prod team=ops -old"


@pytest.mark.django_db
def test_roles_put_back_after_migrate_are_not_grants_but_a_roles_change_is():
    AuditEntry.objects.all().delete()
    operator = Group.objects.get(name=OPERATOR)
    operator.permissions.add(Permission.objects.get(codename="change_machine"))
    ensure_roles()  # takes it away again, as every migrate does: not recorded
    assert not operator.permissions.filter(codename="change_machine").exists()
    assert list(AuditEntry.objects.values_list("what", "target", "detail")) == [
        ("granted permissions to role", "operator", "machines.change_machine")
    ]


@pytest.mark.django_db(transaction=True)
def test_tag_edits_on_the_command_line_are_recorded_as_the_os_user():
    _machine(tags={"env": "test"})
    run(f"{MANAGE} machine tag web-1 env=prod", process_env())
    run(f"{MANAGE} machine tag web-1 team=ops --rm env", process_env())
    run(f"{MANAGE} machine tag web-1 team=ops", process_env())  # no change: no entry
    entries = AuditEntry.objects.filter(action=Action.TAGS).order_by("id")
    assert list(entries.values_list("username", "via", "detail")) == [
        (getpass.getuser(), "cli", "env=prod"),
        (getpass.getuser(), "cli", "team=ops -env"),
    ]


@pytest.mark.django_db
def test_a_team_members_refused_action_is_recorded_once():
    """Vera operates group A's machines and only sees group B's: restarting one of B's is a
    403 and one entry (with the machine), not one from the rights check and another from the
    middleware's 403."""
    machine = _machine(tags={"env": "b"})
    vera = team_member("vera", "operator", "group-a", "env=a")
    team_member("vic", "viewer", "group-b", "env=b")  # the team of B's viewers ...
    Team.objects.get(name="group-b-team-viewer").members.add(vera)  # ... Vera joins
    client = Client()
    client.force_login(vera)
    AuditEntry.objects.all().delete()
    restart = reverse("machines:action", args=[machine.name, "restart"])
    assert client.post(restart).status_code == 403
    entries = AuditEntry.objects.filter(action=Action.REFUSED)
    assert [(e.username, e.machine_name) for e in entries] == [("vera", "web-1")]
