"""The body of an Azure VM's PUT, as Resource Manager's REST reference writes it: its size,
image, OS disk (deleted with it), its user with the machine's SSH key, its interface."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from machines.drivers.cloud import Names
from machines.lib.ssh import public_key_of

from .network import machine_tags

if TYPE_CHECKING:
    from machines.models import Machine


def vm_body(machine: Machine, names: Names, nic: str, aset: str | None, disk: str) -> dict:
    opts, user = machine.driver_options, machine.ssh_user
    publisher, offer, sku, version = opts["image"].split(":")
    key = {
        "path": f"/home/{user}/.ssh/authorized_keys",
        "keyData": public_key_of(machine.ssh_private_key),
    }
    os_profile: dict = {
        "computerName": machine.name[:64],
        "adminUsername": user,
        "linuxConfiguration": {"disablePasswordAuthentication": True, "ssh": {"publicKeys": [key]}},
    }
    if opts.get("custom_data"):
        os_profile["customData"] = base64.b64encode(opts["custom_data"].encode()).decode()
    image = {"publisher": publisher, "offer": offer, "sku": sku, "version": version}
    os_disk = {
        "name": disk,
        "createOption": "FromImage",
        "managedDisk": {"storageAccountType": opts.get("storage_type", "Standard_LRS")},
        "deleteOption": "Delete",
    }
    properties: dict = {
        "hardwareProfile": {"vmSize": opts["size"]},
        "storageProfile": {"imageReference": image, "osDisk": os_disk},
        "osProfile": os_profile,
        "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"primary": True}}]},
    }
    if aset:
        properties["availabilitySet"] = {"id": aset}
    return {
        "location": opts["location"],
        "tags": machine_tags(names, opts.get("tags")),
        "properties": properties,
    }
