"""Cloud machines end to end through the real `machine` CLI: only the provider's HTTP API is
a fake (tests/cloudfakes); its VMs are real fleet hosts, so SSH, provisioning, TLS, `machine
env` and `docker run` are the real thing. Each test runs for DigitalOcean and Hetzner Cloud.
"""

from __future__ import annotations

import shutil
import uuid

import pytest
from django.conf import settings
from django.db import connection

from machines.lib.ssh import public_key_of
from machines.models import Driver, Machine
from machines.operations import checks

from .cloudfakes.fixtures import KINDS
from .helpers import MANAGE, process_env, run
from .tinyimage import tiny_image_tar

pytestmark = pytest.mark.engine
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def _name(cloud) -> str:
    return f"{cloud.kind[:2]}-{uuid.uuid4().hex[:6]}"


def _the_vm(cloud) -> dict:
    (vm,) = cloud.vms().values()
    return vm


def _vm_names_the_dashboard_and_machine(cloud, vm: dict, name: str) -> None:
    instance = settings.INSTANCE_ID
    if cloud.kind == "digitalocean":
        assert {f"dockerdash:{instance}", f"dockerdash:{instance}:{name}"} <= set(vm["tags"])
    else:
        assert vm["labels"] == {"dockerdash/instance": instance, "dockerdash/machine": name}


def _firewall_opens_only_ssh_and_docker(cloud, sources: list[str]) -> None:
    (firewall,) = cloud.fake.firewalls.values()
    if cloud.kind == "digitalocean":
        rules = [(r["ports"], r["sources"]["addresses"]) for r in firewall["inbound_rules"]]
    else:
        rules = [(r["port"], r["source_ips"]) for r in firewall["rules"] if r["direction"] == "in"]
    assert rules == [("22", sources), ("2376", sources)]


def _token_stored_encrypted(cloud, machine: Machine) -> None:
    account = Driver.objects.get(pk=machine.driver_id)
    assert account.kind == cloud.kind and cloud.token in account.secrets.values()
    with connection.cursor() as cursor:
        cursor.execute("SELECT settings, secrets FROM machines_driver WHERE id = %s", [account.pk])
        raw = " ".join(map(str, cursor.fetchone()))
    assert cloud.token not in raw


@pytest.mark.parametrize("cloud", KINDS, indirect=True)
def test_create_use_power_and_remove_a_cloud_machine_with_the_real_cli(
    cloud, machine_cli, tmp_path
):
    name = _name(cloud)
    # The provider's first answer to the VM call is "too many requests": retried, then fine.
    cloud.fake.rate_limit_next("POST", cloud.vm_path)
    # One account says from where the dashboard reaches its machines; the other does not.
    narrow = cloud.kind == "hetzner"
    address = f" --{cloud.kind}-dashboard-address 203.0.113.7,198.51.100.0/24" if narrow else ""
    created = machine_cli(f"create -v {cloud.flags()}{address} {name}")
    out = created.stdout
    assert out.rstrip().endswith("Done"), out
    assert f"rate limit while creating the {cloud.vm_noun}; trying again in" in out
    assert cloud.fake.count("POST", cloud.vm_path) == 2
    assert cloud.fake.count("POST", cloud.vm_path, 429) == 1
    if narrow:
        sources = ["203.0.113.7/32", "198.51.100.0/24"]
        assert f"(SSH, Docker) to {', '.join(sources)}" in out
    else:
        sources = ["0.0.0.0/0", "::/0"]
        assert "(SSH, Docker), to anyone" in out  # said so
    assert cloud.token not in out + created.stderr

    machine = Machine.objects.get(name=name)
    _token_stored_encrypted(cloud, machine)
    vm = _the_vm(cloud)
    _vm_names_the_dashboard_and_machine(cloud, vm, name)
    _firewall_opens_only_ssh_and_docker(cloud, sources)
    (key,) = cloud.fake.keys.values()
    assert key["public_key"].split()[:2] == public_key_of(machine.ssh_private_key).split()[:2]

    listed = machine_cli("ls --format '{{.Name}} {{.DriverName}} {{.State}} {{.URL}}'")
    assert listed.stdout.split() == [name, cloud.kind, "Running", f"tcp://{machine.ip}:2376"]
    inspected = machine_cli(f"inspect {name}").stdout
    assert '"region"' in inspected or '"server_location"' in inspected
    assert cloud.token not in inspected
    (tmp_path / "tiny.tar").write_bytes(tiny_image_tar())
    ran = run(
        f'eval "$({MANAGE} machine env {name})" && '
        f"{DOCKER} import - tiny:1 < {tmp_path}/tiny.tar >/dev/null && "
        f"{DOCKER} run --rm tiny:1 /bin/true && echo ran",
        process_env(),
    )
    assert ran.stdout.strip() == "ran"

    off = "off"
    on = "active" if cloud.kind == "digitalocean" else "running"
    for action, state, status in [
        ("stop", "Stopped", off),
        ("start", "Running", on),
        ("restart", "Running", on),
    ]:
        assert machine_cli(f"{action} {name}").stdout.rstrip().endswith("Done"), action
        assert machine_cli(f"status {name}").stdout.strip() == state, action
        assert _the_vm(cloud)["status"] == status, action

    # Powered off in the provider's console: the next health check says so.
    cloud.fake.console_power_off(vm["id"])
    checks.check_machine(Machine.objects.get(name=name))
    assert machine_cli(f"status {name}").stdout.strip() == "Stopped"
    machine_cli(f"start {name}")
    machine_cli(f"kill {name}")
    assert machine_cli(f"status {name}").stdout.strip() == "Stopped"
    assert _the_vm(cloud)["status"] == off

    removed = machine_cli(f"rm -y -v {name}").stdout
    assert f"Successfully removed {name}" in removed
    assert (
        f"lists nothing with the {'tags' if cloud.kind == 'digitalocean' else 'labels'}" in removed
    )
    assert cloud.left() == {}  # no VM (and no host behind it), key, firewall or tag
    assert not Machine.objects.filter(name=name).exists()
    assert Driver.objects.filter(kind=cloud.kind).count() == 1  # the account stays


@pytest.mark.parametrize("cloud", KINDS, indirect=True)
def test_a_vm_deleted_outside_shows_as_gone_and_rm_removes_the_rest(cloud, machine_cli):
    name = _name(cloud)
    machine_cli(f"create {cloud.flags()} {name}")
    vm = _the_vm(cloud)
    cloud.fake.console_delete(vm["id"])

    checks.check_machine(Machine.objects.get(name=name))
    machine = Machine.objects.get(name=name)
    assert machine.state == Machine.State.ERROR
    assert machine.last_error == (
        f"The {cloud.vm_noun} {vm['id']} of {name} no longer exists at "
        f"{'DigitalOcean' if cloud.kind == 'digitalocean' else 'Hetzner Cloud'} "
        "(deleted outside dockerdash?)"
    )
    listed = machine_cli("ls --format '{{.State}}: {{.Error}}'").stdout.strip()
    assert listed == f"Error: {machine.last_error}"

    assert f"Successfully removed {name}" in machine_cli(f"rm -y {name}").stdout
    assert cloud.left() == {}  # its key and firewall (and tag) went too
