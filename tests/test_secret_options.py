"""Cloud-init user data is a secret at rest: encrypted in the database (rows from before
sealed by the migration), shown in `machine inspect` and the admin as its size and SHA-256
only; and a URL's credentials never reach an operation's log or error, which viewers read."""

from __future__ import annotations

import hashlib
import json
from importlib import import_module

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from machines.models import Driver, Machine, Operation
from machines.validation import strip_url_credentials

from .helpers import MANAGE, process_env, run

USER_DATA = "#cloud-config\nchpasswd:\n  list: |\n    root:Hunter2-Secret\n"
DIGEST = hashlib.sha256(USER_DATA.encode()).hexdigest()


def _machine(**options) -> Machine:
    cloud = Driver.objects.get_or_create(name="do", defaults={"kind": "digitalocean"})[0]
    return Machine.objects.create(
        name="cloud-1", driver=cloud, state="running", last_checked=timezone.now(),
        driver_options={"region": "nyc3", **options},
    )  # fmt: skip


def _stored(machine: Machine) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT driver_options FROM machines_machine WHERE id = %s", [machine.pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_user_data_of_each_cloud_driver_is_encrypted_at_rest():
    machine = _machine(userdata=USER_DATA, user_data=USER_DATA, custom_data=USER_DATA)
    stored = _stored(machine)
    assert "Hunter2" not in stored and "cloud-config" not in stored
    assert json.loads(stored)["region"] == "nyc3"  # the rest stays plain JSON
    assert json.loads(stored)["userdata"].keys() == {"$encrypted"}
    machine = Machine.objects.get(pk=machine.pk)
    assert machine.driver_options["userdata"] == USER_DATA
    assert machine.driver_options["custom_data"] == USER_DATA

    # A row from before the field was encrypted: the migration seals it.
    with connection.cursor() as cursor:
        plain = json.dumps({"userdata": USER_DATA, "region": "nyc3"})
        cursor.execute(
            "UPDATE machines_machine SET driver_options = %s WHERE id = %s", [plain, machine.pk]
        )
    assert Machine.objects.get(pk=machine.pk).driver_options["userdata"] == USER_DATA
    import_module("machines.migrations.0012_encrypted_user_data").seal_existing(apps, None)
    assert "Hunter2" not in _stored(machine)
    assert Machine.objects.get(pk=machine.pk).driver_options["userdata"] == USER_DATA


@pytest.mark.django_db(transaction=True)
def test_machine_inspect_shows_the_user_datas_size_and_hash_only():
    _machine(userdata=USER_DATA)
    shown = run(f"{MANAGE} machine inspect cloud-1", process_env()).stdout
    assert "Hunter2" not in shown and "cloud-config" not in shown
    options = json.loads(shown)["Driver"]
    assert options["userdata"] == {"size": len(USER_DATA), "sha256": DIGEST}
    assert options["region"] == "nyc3"


@pytest.mark.django_db
def test_the_admin_shows_the_user_datas_hash_not_its_text():
    machine = _machine(userdata=USER_DATA)
    root = get_user_model().objects.create_superuser("root", password="root-pw-1234")
    client = Client()
    client.force_login(root)
    page = client.get(reverse("admin:machines_machine_change", args=[machine.pk])).content.decode()
    assert DIGEST in page and "Hunter2" not in page and "cloud-config" not in page


@pytest.mark.django_db
def test_credentials_in_urls_never_reach_an_operations_log(viewer_client):
    machine = _machine()
    op = Operation.objects.create(machine=machine, machine_name=machine.name, kind="provision")
    op.append_log(
        [
            "Installing Docker with the script https://bob:S3cret-pw@get.example.com/install.sh",
            "Downloading http://TOKEN123@mirror.example.com/debian.qcow2 failed",
            "qemu+ssh://ops@kvm1/system and ssh://root:Root-pw@10.0.0.5:22 and ftp://u:p@f.example",
        ]
    )
    lines = list(op.log_lines.order_by("seq").values_list("text", flat=True))
    assert lines == [
        "Installing Docker with the script https://***@get.example.com/install.sh",
        "Downloading http://***@mirror.example.com/debian.qcow2 failed",
        "qemu+ssh://ops@kvm1/system and ssh://root:***@10.0.0.5:22 and ftp://***@f.example",
    ]
    page = viewer_client.get(machine.get_absolute_url()).content.decode()
    assert "S3cret" not in page and "TOKEN123" not in page
    assert strip_url_credentials("no URL here: user:pw@host") == "no URL here: user:pw@host"
