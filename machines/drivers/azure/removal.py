"""Deleting what a machine made in Azure, each with its own operation and wait. A resource
group, virtual network, subnet or availability set this machine made is kept while something
else is in it (another machine's, or the user's), and the log says so."""

from __future__ import annotations

from typing import TYPE_CHECKING

from machines.drivers.azure.api import ArmId
from machines.drivers.cloud import Names, Resource

if TYPE_CHECKING:
    from machines.drivers.azure.driver import AzureDriver
    from machines.models import Machine

DELETE = {
    "vm": "compute.virtual_machines.begin_delete",
    "disk": "compute.disks.begin_delete",
    "nic": "network.network_interfaces.begin_delete",
    "public_ip": "network.public_ip_addresses.begin_delete",
    "firewall": "network.network_security_groups.begin_delete",
}


def delete(driver: AzureDriver, resource: Resource) -> bool | None:
    arm = ArmId.parse(resource.id)
    what = f"deleting the {driver._noun(resource.kind)} {arm.name}"
    if resource.kind in DELETE:
        driver.long_running(what, DELETE[resource.kind], arm.group, arm.name, missing_ok=True)
        return True
    users = _users(driver, resource, arm)
    if users is None:
        return True  # gone already
    if users:
        driver.log(
            f"Kept the {driver._noun(resource.kind)} {arm.name}: {users} other resource(s) "
            "are in it"
        )
        return False
    if resource.kind == "subnet":
        path, args = "network.subnets.begin_delete", (arm.group, arm.parent, arm.name)
    elif resource.kind == "vnet":
        path, args = "network.virtual_networks.begin_delete", (arm.group, arm.name)
    elif resource.kind == "availability_set":
        driver.sdk_call(
            what, "compute.availability_sets.delete", arm.group, arm.name, missing_ok=True
        )
        return True
    else:
        path, args = "resource.resource_groups.begin_delete", (arm.group,)
    driver.long_running(what, path, *args, missing_ok=True)
    return True


def _users(driver: AzureDriver, resource: Resource, arm: ArmId) -> int | None:
    """How many other things are in a shared resource (None: it is gone)."""
    kind = resource.kind
    if kind == "group":
        if not driver.sdk_call(
            f"looking up the resource group {arm.name}",
            "resource.resource_groups.check_existence",
            arm.name,
        ):
            return None
        inside = driver.sdk_call(
            f"listing what is in the resource group {arm.name}",
            "resource.resources.list_by_resource_group",
            arm.name,
        )
        return len(inside)
    if kind == "availability_set":
        found = driver.sdk_call(
            f"looking up the availability set {arm.name}",
            "compute.availability_sets.get",
            arm.group,
            arm.name,
            missing_ok=True,
        )
        return None if found is None else len(found["properties"].get("virtualMachines") or [])
    if kind == "subnet":
        found = driver.sdk_call(
            f"looking up the subnet {arm.name}",
            "network.subnets.get",
            arm.group,
            arm.parent,
            arm.name,
            missing_ok=True,
        )
        return None if found is None else len(found["properties"].get("ipConfigurations") or [])
    found = driver.sdk_call(
        f"looking up the virtual network {arm.name}",
        "network.virtual_networks.get",
        arm.group,
        arm.name,
        missing_ok=True,
    )
    if found is None:
        return None
    subnets = found["properties"].get("subnets") or []
    return sum(len(s.get("properties", {}).get("ipConfigurations") or []) for s in subnets)


def shared_parts(driver: AzureDriver, machine: Machine, names: Names) -> list[Resource]:
    """The group, network and availability set the machine uses that this dashboard made
    (for it or for another machine): tagged dockerdash-made-for with this instance."""
    opts = machine.driver_options
    rg = opts.get("resource_group")
    if not rg:
        return []
    vnet_group, _, vnet = opts.get("vnet", "").rpartition(":")
    candidates = [
        ("group", "resource.resource_groups.get", (rg,), driver.arm_id(rg), rg),
        (
            "vnet",
            "network.virtual_networks.get",
            (vnet_group or rg, vnet),
            driver.arm_id(vnet_group or rg, "Microsoft.Network/virtualNetworks", vnet),
            vnet,
        ),
    ]
    if aset := opts.get("availability_set"):
        arm_id = driver.arm_id(rg, "Microsoft.Compute/availabilitySets", aset)
        candidates.append(
            ("availability_set", "compute.availability_sets.get", (rg, aset), arm_id, aset)
        )
    found = []
    for kind, path, args, arm_id, name in candidates:
        item = driver.sdk_call(
            f"looking up the {driver._noun(kind)} {name}", path, *args, missing_ok=True
        )
        tags = (item or {}).get("tags") or {}
        if tags.get("dockerdash-instance") == names.instance and "dockerdash-made-for" in tags:
            found.append(Resource(kind, arm_id, name))
    return found
