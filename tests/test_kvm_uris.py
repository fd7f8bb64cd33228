"""A kvm provider's libvirt URI reaches a hypervisor and nothing else: qemu, qemu+ssh,
qemu+libssh(2) and qemu+tls, with no parameter but no_tty. Checked on the model, so the
Django admin (which edits the settings as JSON, past the driver's form) refuses what the
Providers page and `machine create --kvm-connect-uri` refuse; a URI stored before the rule is
refused when used."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from machines.drivers.kvm.driver import KVMDriver
from machines.drivers.kvm.forms import KVMSettingsForm
from machines.lib.errors import DriverError
from machines.models import Driver

GOOD = [
    "",
    "qemu:///system",
    "qemu:///session",
    "qemu+ssh://root@kvm1.example.com/system",
    "qemu+ssh://ops@10.0.0.5:2222/system?no_tty=1",
    "qemu+libssh2://ops@[2001:db8::5]/system",
    "qemu+libssh://kvm1/system",
    "qemu+tls://kvm1.example.com/system",
]
BAD = [
    "qemu+ext:///system?command=/bin/sh",
    "qemu+ssh://kvm1/system?command=/tmp/x",
    "qemu+ssh://root@kvm1/system?keyfile=/root/.ssh/id_rsa&no_verify=1",
    "qemu+ssh://kvm1/system?no_verify=1",
    "qemu+unix:///system?socket=/var/run/docker.sock",
    "qemu:///system?socket=/var/run/docker.sock",
    "qemu+tcp://kvm1/system",
    "qemu:///embed?root=/tmp/x",
    "qemu://kvm1/system",
    "qemu+ssh://-oProxyCommand=x/system",
    "qemu+ssh://ops:secret@kvm1/system",
    "qemu+ssh://kvm1/system#x",
    "qemu+ssh://kvm1/sys\ntem",
    "xen:///system",
    "test:///default",
]


def test_the_settings_form_takes_hypervisor_uris_only():
    for uri in GOOD:
        assert KVMSettingsForm({"connect_uri": uri}).is_valid(), uri
    for uri in BAD:
        form = KVMSettingsForm({"connect_uri": uri})
        assert not form.is_valid(), uri
        assert "Enter a libvirt URI" in form.errors["connect_uri"][0], uri


@pytest.mark.django_db
@pytest.mark.parametrize("uri", BAD[:6])
def test_the_admin_refuses_what_the_form_refuses(uri):
    root = get_user_model().objects.create_superuser("root", password="root-pw-1234")
    client = Client()
    client.force_login(root)
    settings = json.dumps({"connect_uri": uri})
    added = client.post(
        "/admin/machines/driver/add/", {"name": "kvm-evil", "kind": "kvm", "settings": settings}
    )
    assert added.status_code == 200 and "Enter a libvirt URI" in added.content.decode()
    assert not Driver.objects.filter(name="kvm-evil").exists()

    kvm = Driver.objects.create(name="kvm-ok", kind="kvm", settings={"connect_uri": ""})
    changed = client.post(
        f"/admin/machines/driver/{kvm.pk}/change/",
        {"name": "kvm-ok", "kind": "kvm", "settings": settings, "created_at_0": "2026-01-01",
         "created_at_1": "00:00:00"},
    )  # fmt: skip
    assert changed.status_code == 200 and "Enter a libvirt URI" in changed.content.decode()
    kvm.refresh_from_db()
    assert kvm.settings == {"connect_uri": ""}


@pytest.mark.django_db
def test_a_uri_stored_past_the_model_is_refused_when_used():
    for uri in BAD:
        with pytest.raises(DriverError, match="is refused"):
            _ = KVMDriver({"connect_uri": uri}).uri  # before any connection is tried
    assert KVMDriver({"connect_uri": "qemu+ssh://kvm1/system"}).uri == "qemu+ssh://kvm1/system"
