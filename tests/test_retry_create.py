"""A failed create can be retried, from the machine's page and from the CLI, without removing
the machine first: what the last attempt made (the host container) is reused."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from machines.models import Machine, Operation
from machines.operations import runner
from tests.fleet import run_operation

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("machine", *args, stdout=out, stderr=err)
    except SystemExit as e:
        return int(e.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_a_failed_create_is_retried_from_the_cli_and_the_page(new_machine, admin_client_):
    machine = new_machine()
    # A daemon flag dockerd does not know: the host is made, provisioning then fails.
    Machine.objects.filter(pk=machine.pk).update(engine_opts=["--no-such-flag"])
    machine.refresh_from_db()
    first = run_operation(machine, Operation.Kind.CREATE)
    assert first.status == "failed" and "Docker did not start" in first.error

    page = admin_client_.get(reverse("machines:detail", args=[machine.name])).content.decode()
    assert "Retry create" in page

    code, out, err = _cli("create", machine.name)
    assert code == 1
    assert out.startswith(f"Retrying the create of {machine.name} (container), which ended failed")
    assert "Docker did not start" in err
    retried = machine.operations.filter(kind="create").order_by("created_at").last()
    assert "Reusing the container" in "\n".join(retried.log_lines.values_list("text", flat=True))

    Machine.objects.filter(pk=machine.pk).update(engine_opts=[])  # fixed (e.g. in the admin)
    response = admin_client_.post(
        reverse("machines:retry_create", args=[machine.name]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="machine-notice",
    )
    assert f"Retrying the create of {machine.name}." in response.content.decode()
    op = Operation.objects.get(machine=machine, status="pending")
    assert runner.run_claimed(runner.claim(op.pk, worker="test")).status == "succeeded"
    machine.refresh_from_db()
    assert machine.state == Machine.State.RUNNING and machine.engine_reachable
    # Created now: no retry offered, and `create` again says it exists.
    page = admin_client_.get(reverse("machines:detail", args=[machine.name])).content.decode()
    assert "Retry create" not in page
    code, _, err = _cli("create", machine.name)
    assert code == 1 and err.strip() == f'Docker machine "{machine.name}" already exists'
