"""azure: a VM per machine in Microsoft Azure (docker-machine's `-d azure`), on the Azure SDK
for Python (azure-identity, azure-mgmt-resource, -network, -compute).

Around the VM it makes what docker-machine's driver made (network.py): resource group if
missing, virtual network and subnet if missing, a network security group opening SSH and
Docker, a public IP, a network interface; the VM gets the machine's SSH key for its user.
Every long-running operation is waited on with progress. rm deletes what the machine made
(shared parts only once nothing else uses them) and lists by tag that none is left.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from azure.core.rest import HttpRequest
from django.conf import settings

from machines.drivers.azure import api, network, removal
from machines.drivers.azure.forms import (
    DEFAULT_IMAGE,
    DEFAULT_LOCATION,
    AzureOptionsForm,
    AzureSettingsForm,
)
from machines.drivers.azure.vm import vm_body
from machines.drivers.cloud import (
    VM,
    Catalog,
    CloudDriver,
    CloudError,
    Image,
    Names,
    Region,
    Resource,
)
from machines.drivers.cloud.lifecycle import PROGRESS_EVERY
from machines.drivers.cloud.resources import Made

if TYPE_CHECKING:
    from machines.models import Machine

POWER = {
    "running": "running",
    "starting": "starting",
    "stopping": "stopping",
    "deallocating": "stopping",
    "stopped": "stopped",
    "deallocated": "stopped",
}
KINDS = {
    "microsoft.compute/virtualmachines": "vm",
    "microsoft.compute/disks": "disk",
    "microsoft.network/networkinterfaces": "nic",
    "microsoft.network/publicipaddresses": "public_ip",
    "microsoft.network/networksecuritygroups": "firewall",
}
NOUNS = {
    "disk": "OS disk",
    "nic": "network interface",
    "public_ip": "public IP",
    "firewall": "network security group",
    "vnet": "virtual network",
    "availability_set": "availability set",
    "group": "resource group",
}


class AzureDriver(CloudDriver):
    kind = "azure"
    label = "Microsoft Azure"
    description = "a VM in Microsoft Azure"
    provider = "Azure"
    vm_noun = "virtual machine"
    public_api_url = "https://management.azure.com"
    api_url_setting = "resource_manager_url"
    settings_form = AzureSettingsForm
    options_form = AzureOptionsForm
    secret_fields = ("client_secret",)
    token_field = "client_secret"  # noqa: S105 (a field name)
    credential_noun = "service principal's credentials"
    access_hint = "the service principal needs the role the README names on the subscription"
    regional = True
    default_region = DEFAULT_LOCATION
    delete_order = (
        "vm", "disk", "nic", "public_ip", "firewall", "subnet", "vnet", "availability_set", "group"
    )  # fmt: skip
    cli_env = {
        "subscription_id": "AZURE_SUBSCRIPTION_ID",
        "tenant_id": "AZURE_TENANT_ID",
        "client_id": "AZURE_CLIENT_ID",
        "client_secret": "AZURE_CLIENT_SECRET",
        "environment": "AZURE_ENVIRONMENT",
        "resource_group": "AZURE_RESOURCE_GROUP",
        "location": "AZURE_LOCATION",
        "size": "AZURE_SIZE",
        "image": "AZURE_IMAGE",
        "ssh_user": "AZURE_SSH_USER",
    }
    cli_file_fields = frozenset({"custom_data"})

    @property
    def api_url(self) -> str:
        return api.endpoints(self.settings)[0]

    def credential(self):
        """The token source (a static one in the tests: tests/cloudfakes/azure.py)."""
        return api.credential(self.settings, self.secrets)

    def failure_of(self, error: BaseException):
        return api.failure_of(error, self.api_url)

    def arm_id(self, group: str, kind: str = "", name: str = "") -> str:
        sub = self.settings.get("subscription_id", "")
        base = f"/subscriptions/{sub}/resourceGroups/{group}"
        return f"{base}/providers/{kind}/{name}" if kind else base

    def _client(self, name: str):
        if not hasattr(self, "_clients"):
            self._clients = api.clients(self.settings, self.credential())
        return self._clients[name]

    def sdk_call(self, what: str, path: str, *args, idempotent=True, missing_ok=False, **kw):
        client, *attrs = path.split(".")
        fn = self._client(client)
        for attr in attrs:
            fn = getattr(fn, attr)

        def run():
            answer = fn(*args, **kw)
            return list(answer) if hasattr(answer, "by_page") else answer  # every page

        return self.call(what, run, idempotent=idempotent, missing_ok=missing_ok)

    def long_running(self, what: str, path: str, *args, accepted=None, missing_ok=False, **kw):
        """A long-running operation, started and waited on with progress. Resource Manager's
        PUT, DELETE and power actions may be sent again: the whole is retried as one."""
        client, *attrs = path.split(".")
        fn = self._client(client)
        for attr in attrs:
            fn = getattr(fn, attr)

        def run():
            poller = fn(*args, **kw)
            if accepted is not None:
                accepted()
            return self._wait_poller(poller, what)

        return self.call(what, run, missing_ok=missing_ok)

    def _wait_poller(self, poller, what: str):
        started = time.monotonic()
        deadline = started + settings.CLOUD_BOOT_TIMEOUT
        while not poller.done():
            poller.wait(max(0.1, min(PROGRESS_EVERY, deadline - time.monotonic())))
            if poller.done():
                break
            waited = time.monotonic() - started
            if time.monotonic() >= deadline:
                raise CloudError(
                    f"Azure had not finished {what} after {waited:.0f} s ({poller.status()})"
                )
            self.log(f"Still waiting ({waited:.0f} s): {what} is {poller.status()}")
        return poller.result()

    def _get(self, path: str, what: str) -> dict:
        """A Resource Manager GET the SDKs pinned here have no operation for."""

        def run() -> dict:
            response = self._client("resource").send_request(HttpRequest("GET", path))
            response.raise_for_status()
            return response.json()

        return self.call(what, run)

    # -- what the account sees -------------------------------------------------------------
    def fetch_catalog(self, region: str = "") -> Catalog:
        region = region or DEFAULT_LOCATION
        sub = self.settings.get("subscription_id", "")
        found = self._get(
            f"/subscriptions/{sub}/locations?api-version={api.LOCATIONS_API}", "listing locations"
        )["value"]
        locations = [
            Region(loc["name"], loc.get("displayName", ""))
            for loc in found
            if (loc.get("metadata") or {}).get("regionType", "Physical") == "Physical"
        ]
        sizes = self.sdk_call(
            f"listing the VM sizes of {region}", "compute.virtual_machine_sizes.list", region
        )
        skus = self.sdk_call(
            f"listing Debian 12 images in {region}",
            "compute.virtual_machine_images.list_skus",
            region,
            "Debian",
            "debian-12",
        )
        images = [
            Image(f"Debian:debian-12:{s['name']}:latest", f"Debian 12 ({s['name']})", api.arch(s))
            for s in sorted(skus, key=lambda s: ("gen2" not in s["name"], s["name"]))
        ]
        return Catalog(
            regions=sorted(locations, key=lambda r: r.slug),
            sizes=[api.size_of(s, region) for s in sizes],
            images=images,
            preferred_region=region,
            preferred_image=DEFAULT_IMAGE,
        )

    def describe_account(self) -> str:
        sub = self.settings.get("subscription_id", "")
        subscription = self._get(
            f"/subscriptions/{sub}?api-version={api.LOCATIONS_API}", "reading the subscription"
        )
        groups = self.sdk_call("listing resource groups", "resource.resource_groups.list")
        catalog = self.catalog(DEFAULT_LOCATION)
        return (
            f"Azure accepts the service principal: subscription "
            f"{subscription.get('displayName', sub)} ({subscription.get('state', 'unknown')}), "
            f"{len(groups)} resource group(s); {len(catalog.regions)} locations"
        )

    # -- making things -------------------------------------------------------------------------
    def apply_options(self, machine: Machine, options: dict) -> None:
        super().apply_options(machine, options)
        machine.ssh_user = options.get("ssh_user") or "docker-user"
        machine.engine_port = options.get("docker_port") or 2376

    def build(self, machine: Machine, names: Names, made) -> None:
        opts = machine.driver_options
        network.group(self, machine, names, made)
        aset = network.availability_set(self, machine, names, made) if opts.get(
            "availability_set"
        ) else None  # fmt: skip
        nsg = network.security_group(self, machine, names, made)
        subnet = network.subnet(self, machine, names, made)
        ip = None if opts.get("no_public_ip") else network.public_ip(self, machine, names, made)
        nic = network.interface(self, machine, names, made, subnet, nsg, ip)
        self._create_vm(machine, names, made, nic, aset)

    def _create_vm(self, machine: Machine, names: Names, made, nic: str, aset) -> None:
        opts = machine.driver_options
        rg, disk = opts["resource_group"], f"{machine.name}-osdisk"
        body = vm_body(machine, names, nic, aset, disk)
        vm_id = self.arm_id(rg, "Microsoft.Compute/virtualMachines", machine.name)
        disk_id = self.arm_id(rg, "Microsoft.Compute/disks", disk)

        def accepted() -> None:
            made.add_once(Resource("vm", vm_id, machine.name))
            made.add_once(Resource("disk", disk_id, disk))
            self.log(
                f"Creating VM {machine.name} ({opts['size']}, {opts['image']}) with tags naming "
                f"this dashboard ({names.instance}) and the machine"
            )

        self.long_running(
            "creating the VM",
            "compute.virtual_machines.begin_create_or_update",
            rg,
            machine.name,
            body,
            accepted=accepted,
        )

    # -- the VM --------------------------------------------------------------------------------
    def _vm(self, machine: Machine, vm_id: str | None = None) -> VM:
        self._private = bool(machine.driver_options.get("use_private_ip"))
        return super()._vm(machine, vm_id)

    def find_vm(self, vm_id: str) -> VM | None:
        arm = api.ArmId.parse(vm_id)
        vm = self.sdk_call(
            f"reading VM {arm.name}",
            "compute.virtual_machines.get",
            arm.group,
            arm.name,
            expand="instanceView",
            missing_ok=True,
        )
        if vm is None:
            return None
        props = vm.get("properties") or {}
        codes = [s.get("code", "") for s in (props.get("instanceView") or {}).get("statuses", [])]
        power = next((c.split("/", 1)[1] for c in codes if c.startswith("PowerState/")), "")
        provisioning = props.get("provisioningState", "")
        if provisioning == "Failed":
            return VM(vm_id, "failed", "error")
        state = POWER.get(power) or ("starting" if provisioning != "Deleting" else "stopping")
        address = self._address(props) if state == "running" else ""
        return VM(vm_id, power or provisioning.lower(), state, address)

    def _address(self, props: dict) -> str:
        nics = (props.get("networkProfile") or {}).get("networkInterfaces") or []
        if not nics:
            return ""
        arm = api.ArmId.parse(nics[0]["id"])
        nic = self.sdk_call(
            f"reading the network interface {arm.name}",
            "network.network_interfaces.get",
            arm.group,
            arm.name,
        )
        config = nic["properties"]["ipConfigurations"][0]["properties"]
        if getattr(self, "_private", False) or "publicIPAddress" not in config:
            return config.get("privateIPAddress", "") if self._private else ""
        ip = api.ArmId.parse(config["publicIPAddress"]["id"])
        found = self.sdk_call(
            f"reading the public IP {ip.name}", "network.public_ip_addresses.get", ip.group, ip.name
        )
        return (found.get("properties") or {}).get("ipAddress", "")

    def power(self, vm_id: str, action: str) -> None:
        arm = api.ArmId.parse(vm_id)
        method, extra, what = {
            "on": ("begin_start", {}, "starting"),
            "off": ("begin_power_off", {"skip_shutdown": True}, "powering off"),
            "shutdown": ("begin_deallocate", {}, "stopping (deallocating)"),
            "reboot": ("begin_restart", {}, "restarting"),
        }[action]
        path = f"compute.virtual_machines.{method}"
        self.long_running(f"{what} VM {arm.name}", path, arm.group, arm.name, **extra)

    # -- removing ------------------------------------------------------------------------------
    def _noun(self, kind: str) -> str:
        return NOUNS.get(kind) or super()._noun(kind)

    def delete(self, resource: Resource) -> bool | None:
        return removal.delete(self, resource)

    def remove(self, machine: Machine) -> None:
        """As create's cleanup, plus the shared parts it uses that another machine of this
        dashboard made (deleted if nothing else is in them now): the last one out of a
        resource group or network that dockerdash made deletes it."""
        made = Made(machine)
        for shared in removal.shared_parts(self, machine, Names.of(machine)):
            made.add_once(shared)
        self._delete_all(machine, Names.of(machine), made)

    def leftovers(self, machine: Machine, names: Names) -> list[Resource]:
        name = names.machine.replace("'", "''")
        tagged = self.sdk_call(
            "listing resources by tag",
            "resource.resources.list",
            filter=f"tagName eq 'dockerdash-machine' and tagValue eq '{name}'",
        )
        found = [
            Resource(KINDS[r["type"].lower()], r["id"], r["name"])
            for r in tagged
            if (r.get("tags") or {}).get("dockerdash-instance") == names.instance
            and r["type"].lower() in KINDS
        ]
        rg, disk = machine.driver_options.get("resource_group", ""), f"{machine.name}-osdisk"
        if rg and self.sdk_call(
            f"looking up the OS disk {disk}", "compute.disks.get", rg, disk, missing_ok=True
        ):  # Azure does not pass a VM's tags on to the OS disk it makes
            found.append(Resource("disk", self.arm_id(rg, "Microsoft.Compute/disks", disk), disk))
        return found
