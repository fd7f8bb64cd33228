"""What an Azure VM needs around it, as docker-machine's azure driver made it: a resource
group (if missing), a virtual network and subnet (if missing), a network security group
opening SSH and Docker, a public IP and a network interface.

The group, network, subnet and availability set may be shared by several machines: one made
here is recorded as made for this machine and tagged `dockerdash-made-for`, and rm deletes it
only once nothing else is in it. A resource group or network that was there before is
never deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from machines.drivers.cloud import Names, Resource

if TYPE_CHECKING:
    from machines.drivers.azure.driver import AzureDriver
    from machines.models import Machine


def machine_tags(names: Names, extra: dict | None = None) -> dict[str, str]:
    return {
        **(extra or {}),
        "dockerdash-instance": names.instance,
        "dockerdash-machine": names.machine,
    }


def shared_tags(names: Names) -> dict[str, str]:
    return {"dockerdash-instance": names.instance, "dockerdash-made-for": names.machine}


def _sources(sources: list[str]) -> dict:
    if sources == ["0.0.0.0/0", "::/0"]:
        return {"sourceAddressPrefix": "*"}  # Azure's word for any address
    return {"sourceAddressPrefixes": sources}


def group(driver: AzureDriver, machine: Machine, names: Names, made) -> None:
    opts = machine.driver_options
    name = opts["resource_group"]
    if driver.sdk_call(
        f"looking up the resource group {name}", "resource.resource_groups.check_existence", name
    ):
        driver.log(f"Using the resource group {name}")
        return
    body = {"location": opts["location"], "tags": shared_tags(names)}
    driver.sdk_call(
        f"creating the resource group {name}",
        "resource.resource_groups.create_or_update",
        name,
        body,
    )
    made.add(Resource("group", driver.arm_id(name), name))
    driver.log(f"Created the resource group {name} in {opts['location']}")


def availability_set(driver: AzureDriver, machine: Machine, names: Names, made) -> str:
    opts = machine.driver_options
    rg, name = opts["resource_group"], opts["availability_set"]
    arm_id = driver.arm_id(rg, "Microsoft.Compute/availabilitySets", name)
    if driver.sdk_call(
        f"looking up the availability set {name}",
        "compute.availability_sets.get",
        rg,
        name,
        missing_ok=True,
    ):
        return arm_id
    body = {
        "location": opts["location"],
        "tags": shared_tags(names),
        "sku": {"name": "Aligned"},
        "properties": {"platformFaultDomainCount": 2, "platformUpdateDomainCount": 5},
    }
    driver.sdk_call(
        f"creating the availability set {name}",
        "compute.availability_sets.create_or_update",
        rg,
        name,
        body,
    )
    made.add(Resource("availability_set", arm_id, name))
    return arm_id


def security_group(driver: AzureDriver, machine: Machine, names: Names, made) -> str:
    opts = machine.driver_options
    rg, name = opts["resource_group"], f"{machine.name}-firewall"
    sources = driver._firewall_sources(machine)
    ports = {(machine.ssh_port, "Tcp"), (machine.engine_port, "Tcp")}
    for item in opts.get("open_port", []):
        port, proto = item.split("/")
        ports.add((int(port), proto.capitalize()))
    rules = [
        {
            "name": f"allow-{proto.lower()}-{port}",
            "properties": {
                "protocol": proto,
                **_sources(sources),
                "sourcePortRange": "*",
                "destinationAddressPrefix": "*",
                "destinationPortRange": str(port),
                "access": "Allow",
                "priority": 300 + n,
                "direction": "Inbound",
            },
        }
        for n, (port, proto) in enumerate(sorted(ports))
    ]
    body = {
        "location": opts["location"],
        "tags": machine_tags(names, opts.get("tags")),
        "properties": {"securityRules": rules},
    }
    arm_id = driver.arm_id(rg, "Microsoft.Network/networkSecurityGroups", name)
    driver.long_running(
        "creating the network security group",
        "network.network_security_groups.begin_create_or_update",
        rg,
        name,
        body,
        accepted=lambda: made.add_once(Resource("firewall", arm_id, name)),
    )
    driver.log(f"Network security group {name} allows only those ports")
    return arm_id


def subnet(driver: AzureDriver, machine: Machine, names: Names, made) -> str:
    opts = machine.driver_options
    vnet_group, _, vnet = opts["vnet"].rpartition(":")
    vnet_group = vnet_group or opts["resource_group"]
    name = opts["subnet"]
    found = driver.sdk_call(
        f"looking up the virtual network {vnet}",
        "network.virtual_networks.get",
        vnet_group,
        vnet,
        missing_ok=True,
    )
    prefix = opts["subnet_prefix"]
    if found is None:
        body = {
            "location": opts["location"],
            "tags": shared_tags(names),
            "properties": {
                "addressSpace": {"addressPrefixes": [prefix]},
                "subnets": [{"name": name, "properties": {"addressPrefix": prefix}}],
            },
        }
        arm_id = driver.arm_id(vnet_group, "Microsoft.Network/virtualNetworks", vnet)
        driver.long_running(
            f"creating the virtual network {vnet}",
            "network.virtual_networks.begin_create_or_update",
            vnet_group,
            vnet,
            body,
            accepted=lambda: made.add_once(Resource("vnet", arm_id, vnet)),
        )
        driver.log(f"Created the virtual network {vnet} ({prefix}) with the subnet {name}")
        return f"{arm_id}/subnets/{name}"
    subnets = {s["name"]: s for s in found.get("properties", {}).get("subnets", [])}
    if name in subnets:
        driver.log(f"Using the subnet {name} of the virtual network {vnet}")
        return subnets[name]["id"]
    arm_id = driver.arm_id(vnet_group, "Microsoft.Network/virtualNetworks", vnet)
    subnet_id = f"{arm_id}/subnets/{name}"
    driver.long_running(
        f"creating the subnet {name}",
        "network.subnets.begin_create_or_update",
        vnet_group,
        vnet,
        name,
        {"properties": {"addressPrefix": prefix}},
        accepted=lambda: made.add_once(Resource("subnet", subnet_id, name)),
    )
    driver.log(f"Created the subnet {name} ({prefix}) in the virtual network {vnet}")
    return subnet_id


def public_ip(driver: AzureDriver, machine: Machine, names: Names, made) -> str:
    opts = machine.driver_options
    rg, name = opts["resource_group"], f"{machine.name}-ip"
    # Basic public IPs are retired: a Standard one, which is always static.
    properties: dict = {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"}
    if opts.get("dns"):
        properties["dnsSettings"] = {"domainNameLabel": opts["dns"]}
    body = {
        "location": opts["location"],
        "tags": machine_tags(names, opts.get("tags")),
        "sku": {"name": "Standard"},
        "properties": properties,
    }
    arm_id = driver.arm_id(rg, "Microsoft.Network/publicIPAddresses", name)
    driver.long_running(
        "creating the public IP",
        "network.public_ip_addresses.begin_create_or_update",
        rg,
        name,
        body,
        accepted=lambda: made.add_once(Resource("public_ip", arm_id, name)),
    )
    return arm_id


def interface(
    driver: AzureDriver, machine: Machine, names: Names, made, subnet_id, nsg_id, ip_id
) -> str:
    opts = machine.driver_options
    rg, name = opts["resource_group"], f"{machine.name}-nic"
    config: dict = {"subnet": {"id": subnet_id}, "privateIPAllocationMethod": "Dynamic"}
    if opts.get("private_ip_address"):
        config |= {
            "privateIPAllocationMethod": "Static",
            "privateIPAddress": opts["private_ip_address"],
        }
    if ip_id:
        config["publicIPAddress"] = {"id": ip_id}
    body = {
        "location": opts["location"],
        "tags": machine_tags(names, opts.get("tags")),
        "properties": {
            "ipConfigurations": [{"name": "ip", "properties": config}],
            "networkSecurityGroup": {"id": nsg_id},
        },
    }
    arm_id = driver.arm_id(rg, "Microsoft.Network/networkInterfaces", name)
    driver.long_running(
        "creating the network interface",
        "network.network_interfaces.begin_create_or_update",
        rg,
        name,
        body,
        accepted=lambda: made.add_once(Resource("nic", arm_id, name)),
    )
    driver.log(f"Network interface {name} in the subnet, behind {nsg_id.rsplit('/', 1)[1]}")
    return arm_id
