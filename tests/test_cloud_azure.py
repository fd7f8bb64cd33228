"""Azure machines end to end through the real `machine` CLI and the Azure SDK, against a fake
of Resource Manager (tests/cloudfakes/azure.py) whose VMs are real fleet hosts: SSH as the
VM's admin user with sudo, provisioning, TLS, `machine env` and `docker run` are real."""

from __future__ import annotations

import shutil
import uuid

import pytest
from django.conf import settings

from machines.lib.ssh import public_key_of
from machines.models import Driver, Machine
from machines.operations import checks

from .cloudfakes.azure import DRIVER, SECRET, SUBSCRIPTION
from .helpers import MANAGE, process_env, run
from .tinyimage import tiny_image_tar

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
VM_PATH = r"(?i)/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.compute/virtualmachines/[^/]+"  # noqa: E501


def _name() -> str:
    return f"az-{uuid.uuid4().hex[:6]}"


def _last_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture
def az_cli(machine_cli):
    """The CLI whose processes use the azure driver on the fake's static token."""

    def cli(args: str, check: bool = True, **env: str):
        return machine_cli(args, check, DOCKERDASH_EXTRA_DRIVERS=DRIVER, **env)

    return cli


def _status(az_cli, name: str) -> str:
    return az_cli(f"status {name}").stdout.strip()


def _power(azure, name: str) -> str:
    vm = azure.find("virtualmachines", name)
    codes = [s["code"] for s in vm["properties"]["instanceView"]["statuses"]]
    return next(c for c in codes if c.startswith("PowerState/"))


@pytest.mark.engine
def test_create_use_power_and_remove_an_azure_vm_with_the_real_cli(azure, az_cli, tmp_path):
    name = _name()
    azure.rate_limit_next("PUT", VM_PATH)  # 429 with Retry-After: 1, then fine
    created = az_cli(
        f"create -v {azure.flags()} --azure-location westeurope --azure-open-port 8080 "
        f"--azure-tags team=ops,cost-centre=42 {name}"
    )
    out = created.stdout
    assert out.rstrip().endswith("Done"), out
    assert "Azure answered rate limit while creating the VM; trying again in 1 s" in out
    assert azure.count("PUT", VM_PATH, 429) == 1 and azure.count("PUT", VM_PATH, 201) == 1
    assert "Created the resource group docker-machine in westeurope" in out
    assert "docker-user becomes root with sudo -n" in out
    assert SECRET not in out + created.stderr

    machine = Machine.objects.get(name=name)
    assert (machine.ssh_user, machine.engine_port) == ("docker-user", 2376)
    account = Driver.objects.get(pk=machine.driver_id)
    assert account.secrets == {"client_secret": SECRET}
    assert account.settings["subscription_id"] == SUBSCRIPTION
    vm = azure.find("virtualmachines", name)
    ours = {"dockerdash-instance": settings.INSTANCE_ID, "dockerdash-machine": name}
    assert vm["tags"] == {"team": "ops", "cost-centre": "42", **ours}
    props = vm["properties"]
    assert props["hardwareProfile"]["vmSize"] == "Standard_B1s"  # the smallest with 1 GB
    assert props["storageProfile"]["imageReference"] == {
        "publisher": "Debian",
        "offer": "debian-12",
        "sku": "12-gen2",
        "version": "latest",
    }
    (key,) = props["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"]
    assert key["keyData"].split()[:2] == public_key_of(machine.ssh_private_key).split()[:2]
    nsg = azure.find("networksecuritygroups", f"{name}-firewall")
    assert nsg["tags"] == vm["tags"]
    rules = [r["properties"] for r in nsg["properties"]["securityRules"]]
    opened = [(r["destinationPortRange"], r["protocol"], r["sourceAddressPrefix"]) for r in rules]
    assert opened == [("22", "Tcp", "*"), ("2376", "Tcp", "*"), ("8080", "Tcp", "*")]
    ip = azure.find("publicipaddresses", f"{name}-ip")
    assert ip["sku"] == {"name": "Standard"} and machine.ip == ip["properties"]["ipAddress"]

    listed = az_cli("ls --format '{{.Name}} {{.DriverName}} {{.State}} {{.URL}}'")
    assert listed.stdout.split() == [name, "azure", "Running", f"tcp://{machine.ip}:2376"]
    (tmp_path / "tiny.tar").write_bytes(tiny_image_tar())
    ran = run(
        f'eval "$({MANAGE} machine env {name})" && '
        f"{DOCKER} import - tiny:1 < {tmp_path}/tiny.tar >/dev/null && "
        f"{DOCKER} run --rm tiny:1 /bin/true && echo ran",
        process_env(),
    )
    assert ran.stdout.strip() == "ran"

    azure.console_power_off(name)  # stopped in the portal: the next health check says so
    checks.check_machine(Machine.objects.get(name=name))
    assert _status(az_cli, name) == "Stopped"
    for action, state, power in [
        ("start", "Running", "PowerState/running"),
        ("restart", "Running", "PowerState/running"),
        ("stop", "Stopped", "PowerState/deallocated"),
    ]:
        assert az_cli(f"{action} {name}").stdout.rstrip().endswith("Done"), action
        assert _status(az_cli, name) == state, action
        assert _power(azure, name) == power, action

    removed = az_cli(f"rm -y -v {name}").stdout
    assert f"Successfully removed {name}" in removed
    assert "Deleted resource group docker-machine" in removed
    assert f"Azure lists nothing with the tags of {name} now" in removed
    assert azure.left() == {}  # no VM, disk, NIC, IP, NSG, network, group, host
    assert Driver.objects.filter(kind="azure").count() == 1  # the account stays


@pytest.mark.engine
def test_shared_groups_and_networks_go_with_the_last_machine_and_never_a_users(azure, az_cli):
    """Two machines in a resource group the user made: the network the first one made stays
    while the second uses it and goes with the second; the user's group stays."""
    with azure.lock:
        azure.groups["ops"] = {
            "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/ops",
            "name": "ops",
            "location": "westus",
            "tags": {},
            "properties": {"provisioningState": "Succeeded"},
        }
    first, second = _name(), _name()
    for name in (first, second):
        az_cli(f"create {azure.flags()} --azure-resource-group ops {name}")

    removed = az_cli(f"rm -y -v {first}").stdout
    assert "Kept the virtual network docker-machine-vnet: 1 other resource(s) are in it" in removed
    assert azure.find("virtualnetworks", "docker-machine-vnet")
    removed = az_cli(f"rm -y -v {second}").stdout
    assert "Deleted virtual network docker-machine-vnet" in removed
    assert azure.left() == {"groups": ["ops"]}  # the user's group, as it was


@pytest.mark.engine
@pytest.mark.parametrize("failure", ["the VM call fails", "no address", "SSH never answers"])
def test_an_azure_create_failing_half_way_deletes_what_it_made(azure, failure, az_cli):
    name = _name()
    env = {}
    if failure == "the VM call fails":
        azure.answer_next(
            "PUT",
            VM_PATH,
            409,
            "OperationNotAllowed",
            "Operation could not be completed as it results in exceeding approved "
            "standardBSFamily Cores quota.",
        )
        why = "Azure refused creating the VM (409 OperationNotAllowed: Operation could not be"
    elif failure == "no address":
        azure.withhold_ip = True
        env["DOCKERDASH_CLOUD_BOOT_TIMEOUT"] = "3"
        why = "was not running with a public IPv4 address after 3 s (it is running, address none)"
    else:
        azure.silent_ssh = True
        env["DOCKERDASH_CLOUD_SSH_TIMEOUT"] = "3"
        why = "did not answer within 3 s"

    result = az_cli(f"create {azure.flags()} {name}", check=False, **env)
    assert result.returncode == 1
    error = _last_line(result)
    assert why in error
    assert "Deleted what this create had made (resource group " in error
    assert error.endswith(f"nothing of {name} is left at Azure")
    assert "Traceback" not in result.stderr
    assert azure.left() == {}
    assert f"Successfully removed {name}" in az_cli(f"rm -y {name}").stdout


def test_a_wrong_secret_gives_one_sentence_and_keeps_nothing(azure_api, az_cli):
    result = az_cli(f"create {azure_api.flags('not-the-secret')} w-1", check=False)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "Invalid options for the azure driver: Azure refused the service principal's "
        "credentials (401 InvalidAuthenticationToken: The access token is invalid): check the "
        "credentials of the account, or give valid ones"
    ]
    assert not Driver.objects.filter(kind="azure").exists()
    assert {s.status for s in azure_api.seen} == {401}


def test_without_credentials_the_cli_says_which_flag_gives_them(az_cli):
    assert _last_line(az_cli("create -d azure w-2", check=False)) == (
        "No azure account yet: give --azure-subscription-id (or add one on the Providers page)"
    )
