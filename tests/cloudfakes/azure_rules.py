"""What the Resource Manager fake (azure.py) does with each kind of resource: the references it
checks on PUT, what it refuses to delete while in use, and the VMs' fleet hosts."""

from __future__ import annotations

import ipaddress
import threading

from .server import Answer, Request


def _props(item: dict) -> dict:
    return item.setdefault("properties", {})


def _by_id(fake, arm_id: str) -> dict | None:
    return fake.items.get(arm_id.lower()) if arm_id else None


def _subnet(fake, subnet_id: str) -> tuple[dict, dict] | None:
    vnet_id, _, name = subnet_id.lower().rpartition("/subnets/")
    vnet = fake.items.get(vnet_id)
    if vnet is None:
        return None
    found = next((s for s in _props(vnet).get("subnets", []) if s["name"].lower() == name), None)
    return (vnet, found) if found else None


def check_put(fake, kind: str, body: dict) -> tuple[str, str] | None:
    props = body.get("properties") or {}
    if not body.get("location"):
        return "LocationRequired", "The location property is required for this definition."
    if kind == "networkinterfaces":
        config = props["ipConfigurations"][0]["properties"]
        if _subnet(fake, config["subnet"]["id"]) is None:
            return "InvalidResourceReference", f"Subnet {config['subnet']['id']} was not found."
        if _by_id(fake, (props.get("networkSecurityGroup") or {}).get("id", "")) is None:
            return "InvalidResourceReference", "The network security group was not found."
        ip = (config.get("publicIPAddress") or {}).get("id", "")
        if ip and _by_id(fake, ip) is None:
            return "InvalidResourceReference", f"Public IP {ip} was not found."
    if kind == "virtualmachines":
        return _check_vm(fake, body, props)
    return None


def _check_vm(fake, body: dict, props: dict) -> tuple[str, str] | None:
    from .azure_catalog import IMAGES, SIZES

    nic = _by_id(fake, props["networkProfile"]["networkInterfaces"][0]["id"])
    if nic is None:
        return "InvalidResourceReference", "The network interface was not found."
    if _props(nic).get("virtualMachine"):
        return "NicInUse", "The network interface is attached to another virtual machine."
    image = props["storageProfile"]["imageReference"]
    if image.get("sku") not in IMAGES.get((image.get("publisher"), image.get("offer")), []):
        return "InvalidParameter", "The platform image requested is not available."
    size = props["hardwareProfile"]["vmSize"]
    if not any(s[0] == size and (s[3] is None or body["location"] in s[3]) for s in SIZES):
        return "SkuNotAvailable", f"The requested size {size} is not available in this location."
    keys = props["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"]
    if not keys or not keys[0].get("keyData", "").startswith("ssh-"):
        return "InvalidParameter", "An SSH public key is required."
    if "availabilitySet" in props and _by_id(fake, props["availabilitySet"]["id"]) is None:
        return "InvalidResourceReference", "The availability set was not found."
    return None


def made(fake, kind: str, item: dict, headers: dict) -> None:
    props = _props(item)
    if kind == "virtualmachines":
        _create_vm(fake, item, headers)
        return
    props["provisioningState"] = "Succeeded"
    if kind == "virtualnetworks":
        for subnet in props.get("subnets", []):
            _new_subnet(item, subnet)
    elif kind == "networkinterfaces":
        _attach_nic(fake, item)


def _new_subnet(vnet: dict, subnet: dict) -> None:
    subnet["id"] = f"{vnet['id']}/subnets/{subnet['name']}"
    sub_props = subnet.setdefault("properties", {})
    sub_props.setdefault("ipConfigurations", [])
    sub_props["provisioningState"] = "Succeeded"


def _attach_nic(fake, nic: dict) -> None:
    config = _props(nic)["ipConfigurations"][0]
    config["id"] = f"{nic['id']}/ipConfigurations/{config['name']}"
    settings = config["properties"]
    _, subnet = _subnet(fake, settings["subnet"]["id"])
    taken = subnet["properties"]["ipConfigurations"]
    if not settings.get("privateIPAddress"):
        network = ipaddress.ip_network(subnet["properties"]["addressPrefix"])
        settings["privateIPAddress"] = str(network[4 + len(taken)])
    taken.append({"id": config["id"]})
    if ip := _by_id(fake, (settings.get("publicIPAddress") or {}).get("id", "")):
        _props(ip)["ipConfiguration"] = {"id": config["id"]}
    nsg = _by_id(fake, _props(nic)["networkSecurityGroup"]["id"])
    _props(nsg).setdefault("networkInterfaces", []).append({"id": nic["id"]})


def set_power(vm: dict, power: str) -> None:
    _props(vm)["instanceView"] = {
        "statuses": [
            {"code": f"ProvisioningState/{_props(vm)['provisioningState'].lower()}"},
            {"code": f"PowerState/{power}"},
        ]
    }


def _create_vm(fake, vm: dict, headers: dict) -> None:
    props = _props(vm)
    props["provisioningState"] = "Creating"
    nic = _by_id(fake, props["networkProfile"]["networkInterfaces"][0]["id"])
    _props(nic)["virtualMachine"] = {"id": vm["id"]}
    os_disk = props["storageProfile"]["osDisk"]
    group_id = vm["id"].rsplit("/providers/", 1)[0]
    disk_id = f"{group_id}/providers/Microsoft.Compute/disks/{os_disk['name']}"
    fake.items[disk_id.lower()] = {
        "id": disk_id,
        "name": os_disk["name"],
        "type": "Microsoft.Compute/disks",
        "location": vm["location"],
        "_group": vm["_group"],
        "managedBy": vm["id"],
        "properties": {"diskSizeGB": 30, "provisioningState": "Succeeded"},
    }
    os_disk["managedDisk"]["id"] = disk_id
    set_power(vm, "starting")
    if fake.withhold_ip:  # it runs, but its address never comes
        _running(fake, vm, None)
        fake.finish(headers)
        return
    fake.ops[_op_id(headers)]["done"] = False  # done when its host has booted
    profile = props["osProfile"]
    key = profile["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"]
    fake.later(lambda: _boot(fake, vm, key, profile["adminUsername"], headers))


def _boot(fake, vm: dict, key: str, user: str, headers: dict) -> None:
    host = fake.hosts.boot([key], user=user)
    with fake.lock:
        if vm["id"].lower() not in fake.items:  # deleted while it booted
            host.remove()
            return
        fake.machines[vm["id"].lower()] = host
        if fake.silent_ssh:
            host.pause()
        _running(fake, vm, host.ip)
        fake.finish(headers)


def _running(fake, vm: dict, ip: str | None) -> None:
    _props(vm)["provisioningState"] = "Succeeded"
    set_power(vm, "running")
    nic = _by_id(fake, _props(vm)["networkProfile"]["networkInterfaces"][0]["id"])
    settings = _props(nic)["ipConfigurations"][0]["properties"]
    public = _by_id(fake, (settings.get("publicIPAddress") or {}).get("id", ""))
    if ip is None:
        return
    if public is not None:
        _props(public)["ipAddress"] = ip
    else:
        settings["privateIPAddress"] = ip


def vm_action(fake, group: str, name: str, action: str, req: Request) -> Answer:
    vm = fake.items.get(fake._id(group, "virtualmachines", name).lower())
    if vm is None:
        return fake._missing(group, "virtualmachines", name)
    host = fake.machines.get(vm["id"].lower())
    action = action.lower()
    if action not in ("start", "poweroff", "restart", "deallocate") or host is None:
        return fake.error(400, "OperationNotAllowed", f"{action} is not possible now.")
    headers = fake._op(vm["location"], done=False)
    skip = req.arg("skipShutdown") == "true"
    work, final = {
        "start": (host.start, "running"),
        "poweroff": (host.kill if skip else host.stop, "stopped"),
        "deallocate": (host.stop, "deallocated"),
        "restart": (host.restart, "running"),
    }[action]
    set_power(vm, {"start": "starting", "restart": "starting"}.get(action, "stopping"))

    def act() -> None:
        work()
        with fake.lock:
            if final == "running":
                _running(fake, vm, host.ip)
            else:
                set_power(vm, final)
            fake.finish(headers)

    threading.Thread(target=act, daemon=True).start()
    return fake.ok(None, 202, headers)


def check_delete(fake, item: dict) -> tuple[str, str] | None:
    props, kind, arm_id = _props(item), item["type"].split("/")[1], item["id"]
    if kind == "networkInterfaces" and props.get("virtualMachine"):
        user = props["virtualMachine"]["id"]
        return "NicInUse", f"Network Interface {arm_id} is used by existing resource {user}."
    if kind == "publicIPAddresses" and props.get("ipConfiguration"):
        user = props["ipConfiguration"]["id"]
        return (
            "PublicIPAddressCannotBeDeleted",
            f"Public IP address {arm_id} can not be deleted since it is still allocated to "
            f"resource {user}.",
        )
    if kind == "networkSecurityGroups" and props.get("networkInterfaces"):
        return (
            "InUseNetworkSecurityGroupCannotBeDeleted",
            f"Network security group {arm_id} cannot be deleted because it is in use.",
        )
    subnets = props.get("subnets", [])
    if kind == "virtualNetworks" and any(s["properties"]["ipConfigurations"] for s in subnets):
        return "InUseSubnetCannotBeDeleted", "Subnet is in use and cannot be deleted."
    if kind == "disks" and item.get("managedBy"):
        return "OperationNotAllowed", f"Disk {item['name']} is attached to VM {item['managedBy']}."
    if kind == "availabilitySets" and props.get("virtualMachines"):
        return "OperationNotAllowed", "The availability set has virtual machines."
    return None


def deleting(fake, item: dict, headers: dict) -> None:
    kind = item["type"].split("/")[1]
    if kind == "virtualMachines":
        fake.ops[_op_id(headers)]["done"] = False
        fake.later(lambda: _delete_vm(fake, item, headers))
        return
    if kind == "networkInterfaces":
        config = _props(item)["ipConfigurations"][0]
        settings = config["properties"]
        _, subnet = _subnet(fake, settings["subnet"]["id"]) or (None, None)
        if subnet is not None:
            subnet["properties"]["ipConfigurations"] = [
                c for c in subnet["properties"]["ipConfigurations"] if c["id"] != config["id"]
            ]
        if ip := _by_id(fake, (settings.get("publicIPAddress") or {}).get("id", "")):
            _props(ip).pop("ipConfiguration", None)
        if nsg := _by_id(fake, _props(item)["networkSecurityGroup"]["id"]):
            users = _props(nsg).get("networkInterfaces", [])
            _props(nsg)["networkInterfaces"] = [u for u in users if u["id"] != item["id"]]
    fake._drop(item)


def _op_id(headers: dict) -> str:
    return headers["Azure-AsyncOperation"].split("/operations/")[1].split("?")[0]


def _delete_vm(fake, vm: dict, headers: dict) -> None:
    host = fake.machines.get(vm["id"].lower())
    if host is not None:
        host.remove()
    with fake.lock:
        fake._drop(vm)
        props = _props(vm)
        if nic := _by_id(fake, props["networkProfile"]["networkInterfaces"][0]["id"]):
            _props(nic).pop("virtualMachine", None)
        os_disk = props["storageProfile"]["osDisk"]
        disk = _by_id(fake, os_disk["managedDisk"].get("id", ""))
        if disk is not None:
            disk.pop("managedBy", None)
            if os_disk.get("deleteOption") == "Delete":
                fake._drop(disk)
        fake.finish(headers)


def put_subnet(fake, req: Request, group: str, vnet_name: str, name: str) -> Answer:
    vnet = fake.items.get(fake._id(group, "virtualnetworks", vnet_name).lower())
    if vnet is None:
        return fake.error(404, "ResourceNotFound", f"Virtual network {vnet_name} was not found.")
    subnets = _props(vnet).setdefault("subnets", [])
    subnet = next((s for s in subnets if s["name"].lower() == name.lower()), None)
    if subnet is None:
        subnet = {"name": name, "properties": dict(req.body.get("properties") or {})}
        subnets.append(subnet)
        _new_subnet(vnet, subnet)
    return fake.ok(subnet, 201, fake._op(vnet["location"]))


def get_subnet(fake, group: str, vnet_name: str, name: str) -> Answer:
    vnet_id = fake._id(group, "virtualnetworks", vnet_name)
    found = _subnet(fake, f"{vnet_id}/subnets/{name}")
    if found is None:
        return fake.error(404, "NotFound", f"Resource {vnet_id}/subnets/{name} not found.")
    return fake.ok(found[1])


def delete_subnet(fake, group: str, vnet_name: str, name: str) -> Answer:
    vnet_id = fake._id(group, "virtualnetworks", vnet_name)
    found = _subnet(fake, f"{vnet_id}/subnets/{name}")
    if found is None:
        return fake.ok(None, 204)
    vnet, subnet = found
    if subnet["properties"]["ipConfigurations"]:
        return fake.error(
            400, "InUseSubnetCannotBeDeleted", "Subnet is in use and cannot be deleted."
        )
    _props(vnet)["subnets"].remove(subnet)
    return fake.ok(None, 202, fake._op(vnet["location"]))
