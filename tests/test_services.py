"""The service layer: the one place web views, the CLI (and the REST API to come) ask to
create, act on and tag machines, with the user's rights checked there, not in each caller."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from machines.models import Driver, Machine, Operation
from machines.services import bulk, machines
from machines.services.drivers import add_account, driver_for, remove_account
from machines.services.errors import InvalidInput

from .fleet import make_machine


def test_a_viewer_may_not_restart_and_nothing_is_recorded(viewer, generic_machine):
    with pytest.raises(PermissionDenied, match="You may not restart machines"):
        machines.request_action(viewer, generic_machine, Operation.Kind.RESTART)
    assert not Operation.objects.filter(machine=generic_machine).exists()


def test_an_operator_restarts_but_may_not_remove(operator, generic_machine):
    op = machines.request_action(operator, generic_machine, Operation.Kind.RESTART)
    assert (op.kind, op.status, op.requested_by) == ("restart", "pending", operator)
    op.status = Operation.Status.SUCCEEDED
    op.save()
    with pytest.raises(PermissionDenied, match="You may not rm machines"):
        machines.request_action(operator, generic_machine, Operation.Kind.REMOVE)


def test_the_server_command_line_acts_with_the_servers_rights(generic_machine):
    op = machines.request_action(None, generic_machine, Operation.Kind.RESTART, via="cli")
    assert (op.requested_by, op.requested_via) == (None, "cli")


def test_a_second_action_while_one_is_pending_is_refused_in_words(operator, generic_machine):
    machines.request_action(operator, generic_machine, Operation.Kind.RESTART)
    with pytest.raises(machines.OperationConflict, match="web-1 is busy"):
        machines.request_action(operator, generic_machine, Operation.Kind.RESTART)


def test_a_viewer_may_not_edit_tags_and_an_operator_gets_them_checked(viewer, operator):
    machine = make_machine(tags={"env": "prod"})
    with pytest.raises(PermissionDenied):
        machines.edit_tags(viewer, machine, add={"team": "web"})
    machines.edit_tags(operator, machine, add={"team": "web"}, remove=["env"])
    machine.refresh_from_db()
    assert machine.tags == {"team": "web"}
    with pytest.raises(InvalidInput, match="has no tag env"):
        machines.edit_tags(operator, machine, remove=["env"])
    with pytest.raises(InvalidInput, match="Invalid tags"):
        machines.edit_tags(operator, machine, add={f"k{n}": "v" for n in range(40)})
    machine.refresh_from_db()
    assert machine.tags == {"team": "web"}


def test_create_from_input_checks_the_drivers_options_and_keeps_no_machine(admin_user):
    driver, made = driver_for(admin_user, "generic", {})
    assert not made
    with pytest.raises(InvalidInput, match="Invalid options for the generic driver: ip_address"):
        machines.create_from_input(
            admin_user,
            "bad-1",
            driver,
            options={"ip_address": "a b"},
            engine={},
            tags={},
            via="api",
        )
    assert not Machine.objects.filter(name="bad-1").exists()


def test_an_operator_may_not_create_nor_bulk_remove(operator, generic_machine):
    driver = Driver.objects.get(name="generic")
    with pytest.raises(PermissionDenied, match="You may not create machines"):
        machines.create_from_input(
            operator, "new-1", driver, options={}, engine={}, tags={}, via="api"
        )
    with pytest.raises(PermissionDenied):
        bulk.request_bulk(Operation.Kind.REMOVE, [generic_machine], user=operator)
    assert not Operation.objects.exists()


def test_only_admins_add_or_remove_provider_accounts(operator, admin_user):
    with pytest.raises(PermissionDenied, match="You may not add provider accounts"):
        add_account(operator, "do-ops", "digitalocean", {"access_token": "t0ken"})
    account = add_account(admin_user, "do-admin", "digitalocean", {"access_token": "t0ken"})
    assert account.secrets and "t0ken" not in str(account.settings)
    with pytest.raises(PermissionDenied):
        remove_account(operator, account)
    make_machine(account, name="on-do")
    with pytest.raises(InvalidInput, match="do-admin still has 1 machine"):
        remove_account(admin_user, account)
