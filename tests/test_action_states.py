"""Actions follow state: the list, the machine's page and the CLI offer what applies to a
machine in its observed state, and say why when asked for something that does not."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from machines.models import Driver, Machine, Operation
from machines.operations import actions as operations

pytestmark = pytest.mark.django_db


def _machine(name: str, state: str, *, checked: bool = True, kind: str = "generic") -> Machine:
    driver = Driver.objects.get_or_create(name=kind, defaults={"kind": kind})[0]
    return Machine.objects.create(
        name=name,
        driver=driver,
        ip="192.0.2.20",
        state=state,
        last_checked=timezone.now() if checked else None,
    )


def _buttons(html: str, machine: Machine) -> set[str]:
    row = re.search(rf'<tr id="machine-{machine.pk}".*?</tr>', html, re.S)[0]
    return set(re.findall(rf"/machines/{machine.name}/([a-z-]+)/\"", row)) - {"remove"}


def test_the_list_offers_what_applies_in_each_state(operator_client):
    container = Driver.objects.get_or_create(name="container", defaults={"kind": "container"})[0]
    running = _machine("up", "running", kind=container.name)
    stopped = _machine("down", "stopped", kind=container.name)
    broken = _machine("broken", "error", kind=container.name)
    unknown = _machine("unknown", "stopped", kind=container.name)
    Machine.objects.filter(pk=unknown.pk).update(last_checked=timezone.now() - timedelta(hours=1))
    page = operator_client.get(reverse("machines:list")).content.decode()
    menu = {"provision", "regenerate-certs", "upgrade"}
    assert _buttons(page, running) == {"stop", "restart", "kill"} | menu
    assert _buttons(page, stopped) == {"start", "restart"}
    # Error: the state is not known for sure, so both ways out are offered.
    assert _buttons(page, broken) == {"start", "stop", "restart", "kill"} | menu
    # Nobody checked it for an hour: every action applies.
    assert _buttons(page, unknown) == {"start", "stop", "restart", "kill"} | menu


def test_a_request_that_does_not_apply_is_refused_with_the_reason(operator_client):
    running = _machine("web-1", "running")
    with pytest.raises(operations.NotApplicable, match="generic driver cannot stop a host"):
        operations.request(running, Operation.Kind.STOP)
    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    attached = Machine.objects.create(name="eng", driver=none, state="running")
    with pytest.raises(operations.NotApplicable, match="none machines are not provisioned"):
        operations.request(attached, Operation.Kind.PROVISION)
    stopped = _machine("web-2", "stopped")
    with pytest.raises(
        operations.NotApplicable,
        match=r"web-2 is stopped: Provision applies when its state is Running or Error\.",
    ):
        operations.request(stopped, Operation.Kind.PROVISION)
    # From the machine's page: said above its actions, nothing requested.
    response = operator_client.post(
        reverse("machines:action", args=["web-2", "upgrade"]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="machine-notice",
    )
    html = response.content.decode()
    assert 'class="notice error"' in html
    assert "web-2 is stopped: Upgrade applies when its state is Running or Error." in html
    assert Operation.objects.count() == 0


def test_create_applies_to_a_new_machine_and_again_only_after_a_failed_one():
    machine = _machine("new-1", "none", checked=False)
    assert operations.ACTIONS["create"].refusal(machine) == ""
    Operation.objects.create(machine=machine, machine_name="new-1", kind="create", status="failed")
    Machine.objects.filter(pk=machine.pk).update(state="error")
    machine.refresh_from_db()
    assert operations.ACTIONS["create"].refusal(machine) == ""
    Operation.objects.create(
        machine=machine, machine_name="new-1", kind="create", status="succeeded"
    )
    assert "created already" in operations.ACTIONS["create"].refusal(machine)
    imported = _machine("imported-1", "running")
    assert "not created by dockerdash" in operations.ACTIONS["create"].refusal(imported)


def test_the_cli_says_why_an_action_does_not_apply():
    _machine("web-3", "running")
    _machine("web-4", "running", kind="container")
    _machine("web-5", "stopped", kind="container")
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("machine", "start", "web-4", stdout=io.StringIO(), stderr=err)
    assert exit_.value.code == 1
    assert err.getvalue().strip() == "web-4 is already running."
    with pytest.raises(SystemExit):
        call_command("machine", "stop", "web-3", "web-5", stdout=io.StringIO(), stderr=err)
    assert "generic driver cannot stop a host." in err.getvalue()
    assert "web-5 is already stopped." in err.getvalue()
    with pytest.raises(SystemExit):
        call_command("machine", "upgrade", "web-5", stdout=io.StringIO(), stderr=err)
    assert "web-5 is stopped: Upgrade applies when its state is Running or Error." in err.getvalue()
    assert Operation.objects.count() == 0


def test_the_machine_page_pushes_its_actions_with_its_state():
    from django.template.loader import render_to_string

    machine = _machine("web-6", "stopped", kind="container")

    def actions() -> str:
        html = render_to_string(
            "machines/detail.html#machine_oob", {"machine": machine, "can_operate": True}
        )
        found = re.search(r'<div class="actions" id="machine-actions-\d+".*?</div>', html, re.S)[0]
        assert 'hx-swap-oob="true"' in found
        return found

    assert "/web-6/start/" in actions() and "/web-6/stop/" not in actions()
    machine.state = "running"
    assert "/web-6/start/" not in actions() and "/web-6/stop/" in actions()
