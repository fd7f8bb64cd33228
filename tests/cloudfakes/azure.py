"""A fake of Azure Resource Manager: the endpoints the azure driver calls.

Paths, methods, status codes, JSON bodies (`properties`, `provisioningState`, `value` and
`nextLink` pages), error bodies (`{"error": {"code", "message"}}`), 429 with Retry-After, and
long-running operations (201/202 with an `Azure-AsyncOperation` header, then `GET` of that
operation from InProgress to Succeeded or Failed) follow Microsoft's REST API reference and
the azure-rest-api-specs at the versions the locked SDKs pin, which the fake checks:
Microsoft.Network 2026-03-01 (virtualNetworks, subnets, networkSecurityGroups,
publicIPAddresses, networkInterfaces), Microsoft.Compute 2026-04-01 (virtualMachines and
their start/powerOff/deallocate/restart, availabilitySets, locations/vmSizes, vmimage skus)
and 2026-03-02 (disks), Microsoft.Resources 2025-04-01 (resourcegroups, resources) and
2022-12-01 (subscriptions, locations). As Resource Manager does, it refuses to delete what is
in use (a NIC of a VM, a public IP or NSG of a NIC, a subnet with addresses), deletes a VM's
OS disk with it (deleteOption Delete) and a group with all inside.

Each VM is a real fleet host (hosts.py) booted while the create operation is InProgress,
whose adminUsername gets the VM's SSH key with sudo; its public IP (or, without one, its
NIC's private IP) is the host's address. The driver authenticates with a static token
(`StaticTokenAzureDriver`): Entra ID's sign-in is not part of what is faked.
"""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import quote

from azure.core.credentials import AccessToken

from machines.drivers.azure.driver import AzureDriver

from . import azure_rules as rules
from .azure_catalog import SUBSCRIPTION, TENANT, CatalogRoutes
from .server import Answer, FakeAPI, Request

CLIENT = "0f8fad5b-d9cb-469f-a165-70867728950e"
SECRET = "Zx8Q~fake.client.secret_for-tests"
DRIVER = "azure=tests.cloudfakes.azure.StaticTokenAzureDriver"
VERSIONS = {
    "microsoft.network": "2026-03-01",
    "microsoft.compute/disks": "2026-03-02",
    "microsoft.compute": "2026-04-01",
    "resources": "2025-04-01",
    "subscriptions": "2022-12-01",
}
SUB = rf"/subscriptions/({SUBSCRIPTION})"
RG = SUB + r"/resourcegroups/([\w().-]+)"
NET = RG + r"/providers/microsoft\.network"
CMP = RG + r"/providers/microsoft\.compute"
TYPES = {
    "virtualnetworks": "Microsoft.Network/virtualNetworks",
    "networksecuritygroups": "Microsoft.Network/networkSecurityGroups",
    "publicipaddresses": "Microsoft.Network/publicIPAddresses",
    "networkinterfaces": "Microsoft.Network/networkInterfaces",
    "virtualmachines": "Microsoft.Compute/virtualMachines",
    "disks": "Microsoft.Compute/disks",
    "availabilitysets": "Microsoft.Compute/availabilitySets",
}


class StaticToken:
    """A credential that always gives the same bearer token (azure-core's TokenCredential)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class StaticTokenAzureDriver(AzureDriver):
    """The azure driver with the account's client secret as its bearer token, for the fake
    (DOCKERDASH_EXTRA_DRIVERS=azure=tests.cloudfakes.azure.StaticTokenAzureDriver)."""

    def credential(self):
        return StaticToken(self.secrets.get("client_secret", ""))


class AzureFake(CatalogRoutes, FakeAPI):
    routes = [
        ("GET", r"(?i)" + SUB + r"/locations", "list_locations"),
        ("GET", r"(?i)" + SUB, "get_subscription"),
        ("GET", r"(?i)" + SUB + r"/resourcegroups", "list_groups"),
        ("HEAD", r"(?i)" + RG, "head_group"),
        ("GET", r"(?i)" + RG, "get_group"),
        ("PUT", r"(?i)" + RG, "put_group"),
        ("DELETE", r"(?i)" + RG, "delete_group"),
        ("GET", r"(?i)" + RG + r"/resources", "list_in_group"),
        ("GET", r"(?i)" + SUB + r"/resources", "list_resources"),
        ("GET", r"(?i)" + SUB + r"/providers/microsoft\.compute/locations/(\w+)/vmsizes", "sizes"),
        (
            "GET",
            r"(?i)" + SUB + r"/providers/microsoft\.compute/locations/(\w+)/publishers/([\w.-]+)"
            r"/artifacttypes/vmimage/offers/([\w.-]+)/skus",
            "skus",
        ),
        ("GET", r"(?i)" + SUB + r"/providers/[\w.]+/locations/\w+/operations/([\w-]+)", "op"),
        ("PUT", r"(?i)" + NET + r"/virtualnetworks/([\w.-]+)/subnets/([\w.-]+)", "put_subnet"),
        ("GET", r"(?i)" + NET + r"/virtualnetworks/([\w.-]+)/subnets/([\w.-]+)", "get_subnet"),
        ("DELETE", r"(?i)" + NET + r"/virtualnetworks/([\w.-]+)/subnets/([\w.-]+)", "del_subnet"),
        ("POST", r"(?i)" + CMP + r"/virtualmachines/([\w.-]+)/(\w+)", "vm_action"),
        ("PUT", r"(?i)" + RG + r"/providers/microsoft\.\w+/(\w+)/([\w.-]+)", "put"),
        ("GET", r"(?i)" + RG + r"/providers/microsoft\.\w+/(\w+)/([\w.-]+)", "get"),
        ("DELETE", r"(?i)" + RG + r"/providers/microsoft\.\w+/(\w+)/([\w.-]+)", "delete"),
    ]

    def __init__(self, token: str = SECRET, hosts=None) -> None:
        super().__init__(token, hosts)
        self.groups: dict[str, dict] = {}
        self.items: dict[str, dict] = {}  # lower-case id -> resource
        self.ops: dict[str, dict] = {}
        self.machines: dict[str, object] = {}  # VM id -> its fleet host
        self.withhold_ip = False
        self.silent_ssh = False

    @property
    def url(self) -> str:
        return self.base_url

    def flags(self, secret: str = SECRET) -> str:
        return (
            f"-d azure --azure-subscription-id {SUBSCRIPTION} --azure-tenant-id {TENANT} "
            f"--azure-client-id {CLIENT} --azure-client-secret {secret} "
            f"--azure-resource-manager-url {self.url}"
        )

    # -- Resource Manager's conventions ---------------------------------------------------------
    def error(self, status: int, code: str, message: str) -> Answer:
        return status, {"error": {"code": code, "message": message}}, {}

    def too_many(self) -> Answer:
        body = {"error": {"code": "TooManyRequests", "message": "The request is being throttled."}}
        return 429, body, {"Retry-After": "1"}

    def page(self, req: Request, key: str, items: list[dict]) -> dict:
        start = int(req.arg("$skiptoken", "0"))
        chunk = items[start : start + self.max_per_page]
        body: dict = {"value": chunk}
        if start + self.max_per_page < len(items):
            query = "&".join(
                f"{k}={quote(v[0])}" for k, v in req.query.items() if k != "$skiptoken"
            )
            body["nextLink"] = (
                f"{self.base_url}{req.path}?{query}&$skiptoken={start + self.max_per_page}"
            )
        return body

    def _answer(self, method: str, path: str, query: str, headers, raw: bytes) -> Answer:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return self.error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        version = re.search(r"api-version=([\w-]+)", query)
        expected = self._version(path)
        if "/operations/" not in path and (not version or version[1] != expected):
            return self.error(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version[1] if version else ''}' is invalid. The supported "
                f"version is '{expected}'.",
            )
        return super()._answer(method, path, query, headers, raw)

    @staticmethod
    def _version(path: str) -> str:
        lower = path.lower()
        if "/providers/microsoft.compute/disks" in lower:
            return VERSIONS["microsoft.compute/disks"]
        for namespace in ("microsoft.network", "microsoft.compute"):
            if f"/providers/{namespace}" in lower:
                return VERSIONS[namespace]
        if re.fullmatch(r"/subscriptions/[^/]+(/locations)?", lower):
            return VERSIONS["subscriptions"]
        return VERSIONS["resources"]

    def ok(self, body: dict | None, status: int = 200, headers=None) -> Answer:
        return status, body, headers or {}

    def _id(self, group: str, kind: str, name: str) -> str:
        base = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}"
        return f"{base}/providers/{TYPES[kind]}/{name}"

    def _op(self, location: str, done=None, fail: dict | None = None) -> dict[str, str]:
        """A long-running operation: InProgress until `done` says so (else the next poll)."""
        op_id = str(uuid.uuid4())
        self.ops[op_id] = {"done": done, "fail": fail, "polled": 0, "status": "InProgress"}
        url = (
            f"{self.base_url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/"
            f"{location}/operations/{op_id}?api-version=2026-04-01"
        )
        return {"Azure-AsyncOperation": url}

    def op(self, req: Request, sub: str, op_id: str) -> Answer:
        op = self.ops.get(op_id)
        if op is None:
            return self.error(404, "NotFound", "The operation was not found.")
        op["polled"] += 1
        if op["status"] == "InProgress" and op["done"] is None and op["polled"] > 1:
            op["status"] = "Failed" if op["fail"] else "Succeeded"
        body = {"name": op_id, "status": op["status"], "startTime": self.now()}
        if op["status"] == "Failed":
            body["error"] = op["fail"] or {"code": "InternalExecutionError", "message": "failed"}
        return self.ok(body)

    def finish(self, headers: dict[str, str], failed: dict | None = None) -> None:
        op_id = headers["Azure-AsyncOperation"].split("/operations/")[1].split("?")[0]
        self.ops[op_id].update(status="Failed" if failed else "Succeeded", fail=failed)

    # -- subscriptions and groups ---------------------------------------------------------------
    def _no_group(self, name: str) -> Answer:
        return self.error(
            404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
        )

    def _group(self, name: str) -> dict | None:
        return self.groups.get(name.lower())

    def list_groups(self, req: Request, sub: str) -> Answer:
        return self.ok(self.page(req, "value", list(self.groups.values())))

    def head_group(self, req: Request, sub: str, name: str) -> Answer:
        return self.ok(None, 204 if self._group(name) else 404)

    def get_group(self, req: Request, sub: str, name: str) -> Answer:
        group = self._group(name)
        if group is None:
            return self._no_group(name)
        return self.ok(group)

    def put_group(self, req: Request, sub: str, name: str) -> Answer:
        existed = self._group(name) is not None
        group = {
            "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}",
            "name": name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": req.body.get("location"),
            "tags": req.body.get("tags") or {},
            "properties": {"provisioningState": "Succeeded"},
        }
        self.groups[name.lower()] = group
        return self.ok(group, 200 if existed else 201)

    def delete_group(self, req: Request, sub: str, name: str) -> Answer:
        group = self._group(name)
        if group is None:
            return self._no_group(name)
        headers = self._op(group["location"])
        for item in self._in_group(name):
            self._drop(item)
        del self.groups[name.lower()]
        return self.ok(None, 202, headers)

    def _in_group(self, name: str) -> list[dict]:
        return [r for r in self.items.values() if r["_group"].lower() == name.lower()]

    def list_in_group(self, req: Request, sub: str, name: str) -> Answer:
        if self._group(name) is None:
            return self._no_group(name)
        return self.ok(self.page(req, "value", [_generic(r) for r in self._in_group(name)]))

    def list_resources(self, req: Request, sub: str) -> Answer:
        wanted = re.fullmatch(r"tagName eq '(.+)' and tagValue eq '(.*)'", req.arg("$filter"))
        items = [
            _generic(r)
            for r in self.items.values()
            if not wanted or (r.get("tags") or {}).get(wanted[1]) == wanted[2].replace("''", "'")
        ]
        return self.ok(self.page(req, "value", items))

    # -- resources ------------------------------------------------------------------------------
    def _item(self, group: str, kind: str, name: str) -> dict | None:
        if kind.lower() not in TYPES:
            return None
        return self.items.get(self._id(group, kind.lower(), name).lower())

    def _missing(self, group: str, kind: str, name: str) -> Answer:
        return self.error(
            404,
            "ResourceNotFound",
            f"The Resource '{TYPES.get(kind.lower(), kind)}/{name}' under resource group "
            f"'{group}' was not found.",
        )

    def get(self, req: Request, sub: str, group: str, kind: str, name: str) -> Answer:
        item = self._item(group, kind, name)
        if item is None:
            return self._missing(group, kind, name)
        body = _public(item)
        if kind.lower() == "virtualmachines" and req.arg("$expand") != "instanceView":
            body["properties"] = {
                k: v for k, v in body["properties"].items() if k != "instanceView"
            }
        return self.ok(body)

    def put(self, req: Request, sub: str, group: str, kind: str, name: str) -> Answer:
        kind = kind.lower()
        if self._group(group) is None:
            return self._no_group(group)
        if kind not in TYPES or kind == "disks":
            return self.error(400, "InvalidResourceType", f"{kind} cannot be made here.")
        refused = rules.check_put(self, kind, req.body)
        if refused:
            return self.error(400, *refused)
        arm_id = self._id(group, kind, name)
        existed = arm_id.lower() in self.items
        item = {
            **req.body,
            "id": arm_id,
            "name": name,
            "type": TYPES[kind],
            "_group": group,
            "properties": {**(req.body.get("properties") or {}), "provisioningState": "Updating"},
        }
        self.items[arm_id.lower()] = item
        headers = self._op(item["location"])
        rules.made(self, kind, item, headers)
        return self.ok(_public(item), 200 if existed else 201, headers)

    def delete(self, req: Request, sub: str, group: str, kind: str, name: str) -> Answer:
        item = self._item(group, kind, name)
        if item is None:
            return self.ok(None, 204)
        refused = rules.check_delete(self, item)
        if refused:
            return self.error(400, *refused)
        headers = self._op(item["location"])
        rules.deleting(self, item, headers)
        return self.ok(None, 202, headers)

    def _drop(self, item: dict) -> None:
        self.items.pop(item["id"].lower(), None)
        if host := self.machines.pop(item["id"].lower(), None):
            host.remove()

    # -- subnets and VM actions: in azure_rules.py ----------------------------------------------
    def put_subnet(self, req, sub, group, vnet, name) -> Answer:
        return rules.put_subnet(self, req, group, vnet, name)

    def get_subnet(self, req, sub, group, vnet, name) -> Answer:
        return rules.get_subnet(self, group, vnet, name)

    def del_subnet(self, req, sub, group, vnet, name) -> Answer:
        return rules.delete_subnet(self, group, vnet, name)

    def vm_action(self, req, sub, group, name, action) -> Answer:
        return rules.vm_action(self, group, name, action, req)

    # -- what a test looks at -------------------------------------------------------------------
    def console_power_off(self, vm_name: str) -> None:
        vm = self.find("virtualmachines", vm_name)
        self.machines[vm["id"].lower()].kill()
        with self.lock:
            rules.set_power(vm, "stopped")

    def console_delete(self, vm_name: str) -> None:
        vm = self.find("virtualmachines", vm_name)
        with self.lock:
            self._drop(vm)

    def find(self, kind: str, name: str) -> dict:
        return next(
            r for r in self.items.values() if r["type"] == TYPES[kind] and r["name"] == name
        )

    def left(self) -> dict[str, list]:
        """Every resource group and resource still there, and the hosts still up."""
        return {
            k: v
            for k, v in {
                "groups": sorted(g["name"] for g in self.groups.values()),
                "resources": sorted(f"{r['type']}/{r['name']}" for r in self.items.values()),
                "hosts": self.hosts.alive() if self.hosts else [],
            }.items()
            if v
        }


def _public(item: dict) -> dict:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _generic(item: dict) -> dict:
    return {k: item[k] for k in ("id", "name", "type", "location", "tags") if k in item}
