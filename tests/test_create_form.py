"""Bad input to the create form gives a clear field error and writes nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from machines.lib.ssh import generate_key
from machines.models import Driver, Machine, Operation


def _post(client, **overrides):
    generic = Driver.objects.get(name="generic")
    data = {
        "name": "db-1",
        "driver": generic.pk,
        "opt-ip_address": "192.0.2.20",
        "opt-ssh_user": "root",
        "opt-ssh_port": "22",
        "opt-engine_port": "2376",
        "opt-ssh_key": "",
    }
    data.update(overrides)
    return client.post(reverse("machines:create"), data)


def _nothing_written(before_machines: int) -> None:
    assert Machine.objects.count() == before_machines
    assert Operation.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "-bad"}, "starting with a letter or digit"),
        ({"name": "bad name"}, "starting with a letter or digit"),
        ({"name": ""}, "This field is required"),
        ({"opt-ssh_port": "70000"}, "less than or equal to 65535"),
        ({"opt-ssh_port": "0"}, "greater than or equal to 1"),
        ({"opt-engine_port": "99999"}, "less than or equal to 65535"),
        ({"opt-ssh_key": "not a key"}, "This is not a private key"),
        (
            {"opt-ssh_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END"},
            "This private key cannot be read",
        ),
        ({"opt-ip_address": ""}, "This field is required"),
        ({"opt-ip_address": "-oProxyCommand=x"}, "Enter an IP address or a host name"),
        ({"engine_labels": "no-equals-sign"}, "is not of the form key=value"),
        ({"engine_opts": "rm -rf /"}, "is not a daemon flag"),
    ],
)
def test_bad_input_gives_a_field_error_and_writes_nothing(admin_client_, overrides, message):
    response = _post(admin_client_, **overrides)
    assert response.status_code == 400
    assert message in response.content.decode()
    _nothing_written(0)


@pytest.mark.django_db
def test_duplicate_name_is_refused(admin_client_, generic_machine):
    response = _post(admin_client_, name="web-1")
    assert response.status_code == 400
    assert "Machine with this Name already exists" in response.content.decode()
    _nothing_written(1)


@pytest.mark.django_db
def test_good_input_creates_the_machine_and_a_pending_create(admin_client_, admin_user):
    private, public = generate_key()
    response = _post(admin_client_, **{"opt-ssh_key": private, "engine_labels": "env=ci\nteam=a"})
    assert response.status_code == 302
    machine = Machine.objects.get(name="db-1")
    assert response["Location"] == machine.get_absolute_url()
    assert (machine.ip, machine.ssh_user, machine.ssh_port) == ("192.0.2.20", "root", 22)
    assert machine.ssh_private_key.strip() == private.strip()
    assert machine.engine_labels == ["env=ci", "team=a"]
    assert machine.created_by == admin_user
    op = Operation.objects.get()
    assert (op.kind, op.status, op.machine) == ("create", "pending", machine)
    page = admin_client_.get(machine.get_absolute_url()).content.decode()
    assert public.split()[1] in page  # the public key to authorize on the host


@pytest.mark.django_db
def test_choosing_a_driver_swaps_in_its_fields(admin_client_):
    generic = Driver.objects.get(name="generic")
    container = Driver.objects.get(name="container")
    fields = admin_client_.get(
        reverse("machines:driver_fields"), {"driver": generic.pk}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'name="opt-ip_address"' in fields and "<html" not in fields
    fields = admin_client_.get(
        reverse("machines:driver_fields"), {"driver": container.pk}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'name="opt-ip_address"' not in fields
    assert 'id="driver-fields"' in fields


@pytest.mark.django_db
def test_remove_needs_the_typed_name(admin_client_, generic_machine):
    url = reverse("machines:remove", args=["web-1"])
    response = admin_client_.post(url, {"confirm": "web-2"})
    assert response.status_code == 400
    assert "Type &#x27;web-1&#x27; to remove this machine" in response.content.decode()
    assert Operation.objects.count() == 0
    assert admin_client_.post(url, {"confirm": "web-1"}).status_code == 302
    assert Operation.objects.get().kind == "rm"
