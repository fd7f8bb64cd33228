"""hetzner: a Hetzner Cloud server per machine, on hcloud (Hetzner's official client).

Each machine gets its own SSH key and firewall (SSH and Docker only) labelled with this
dashboard's instance and the machine, then a server with the same labels, created with both;
rm deletes them and lists by label selector that none is left.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import TYPE_CHECKING

import requests
from django.conf import settings
from hcloud import APIException, Client
from hcloud.firewalls import Firewall, FirewallRule
from hcloud.images import Image as HImage
from hcloud.locations import Location
from hcloud.networks import Network
from hcloud.server_types import ServerType
from hcloud.servers import Server
from hcloud.ssh_keys import SSHKey

from machines.drivers.cloud import (
    VM,
    Catalog,
    CloudDriver,
    CloudError,
    Failure,
    Image,
    Names,
    Region,
    Resource,
    Size,
)
from machines.drivers.hetzner.forms import PUBLIC_API, HetznerOptionsForm, HetznerSettingsForm

if TYPE_CHECKING:
    from machines.models import Machine

STATES = {
    "initializing": "starting",
    "starting": "starting",
    "running": "running",
    "stopping": "stopping",
    "off": "stopped",
    "deleting": "stopping",
    "rebuilding": "starting",
    "migrating": "starting",
}
POWER = {"on": "power_on", "off": "power_off", "shutdown": "shutdown", "reboot": "reboot"}
# The HTTP status of Hetzner's error codes (hcloud keeps only the code).
STATUS = {
    "unauthorized": 401,
    "forbidden": 403,
    "token_readonly": 403,
    "not_found": 404,
    "conflict": 409,
    "uniqueness_error": 409,
    "resource_in_use": 422,
    "invalid_input": 400,
    "locked": 423,
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "service_error": 503,
    "unavailable": 503,
    "maintenance": 503,
    "timeout": 504,
}
LABEL_OK = re.compile(r"\A[a-z0-9A-Z](?:[a-z0-9A-Z\-_.]{0,61}[a-z0-9A-Z])?\Z")


def label_value(text: str) -> str:
    """A label value naming `text` one to one: as is when Hetzner allows it, else a prefix
    and a digest (a machine may be named "web-", which a label value may not end with)."""
    if LABEL_OK.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{re.sub(r'[^a-z0-9A-Z]+', '-', text).strip('-')[:50]}-{digest}".lstrip("-")


def labels_of(names: Names) -> dict[str, str]:
    return {
        "dockerdash/instance": label_value(names.instance),
        "dockerdash/machine": label_value(names.machine),
    }


class HetznerDriver(CloudDriver):
    kind = "hetzner"
    label = "Hetzner Cloud"
    description = "a server at Hetzner Cloud"
    provider = "Hetzner Cloud"
    vm_noun = "server"
    tag_noun = "labels"
    public_api_url = PUBLIC_API
    settings_form = HetznerSettingsForm
    options_form = HetznerOptionsForm
    token_field = "api_token"  # noqa: S105 (a field name)
    secret_fields = ("api_token",)
    cli_env = {"api_token": "HCLOUD_TOKEN", "api_url": "HCLOUD_ENDPOINT"}
    firewall_first = True

    def _client(self) -> Client:
        if not hasattr(self, "_hcloud"):
            self._hcloud = Client(
                self.token, api_endpoint=self.api_url, application_name="dockerdash", timeout=60
            )
            # One retry policy, with its bound and its messages, for every provider
            # (cloud/api.py): hcloud's own retries would multiply with it.
            self._hcloud._client._retry_max_retries = 0
        return self._hcloud

    def failure_of(self, error: BaseException) -> Failure | None:
        if isinstance(error, APIException):
            code = error.code
            status = code if isinstance(code, int) else STATUS.get(code, 400)
            return Failure(status, str(code), str(error.message))
        if isinstance(error, requests.RequestException):
            reason = str(error).split("\n")[0][:200]
            return Failure(None, "unreachable", f"{self.api_url}: {reason}")
        return None

    # -- what the account sees -------------------------------------------------------------
    def fetch_catalog(self) -> Catalog:
        hc = self._client()
        locations = self.call("listing locations", hc.locations.get_all)
        types = self.call("listing server types", hc.server_types.get_all)
        images = self.call("listing images", _system_images, hc)
        return Catalog(
            regions=[Region(loc.name, f"{loc.city}, {loc.country}") for loc in locations],
            sizes=[_size(t) for t in types],
            images=[
                Image(i["name"], i.get("description") or i["name"], i.get("architecture") or "x86")
                for i in images
                if i.get("name") and i.get("status") == "available" and not _deprecated(i)
            ],
            preferred_region="fsn1",
            preferred_image="debian-12",
        )

    def describe_account(self) -> str:
        hc = self._client()
        servers = self.call("listing servers", hc.servers.get_all)
        keys = self.call("listing SSH keys", hc.ssh_keys.get_all)
        catalog = self.catalog()
        return (
            f"Hetzner Cloud accepts the token: the project has {len(servers)} server(s) and "
            f"{len(keys)} SSH key(s); {len(catalog.regions)} locations, "
            f"{len(catalog.sizes)} server types (a read-only token shows at the first create)"
        )

    # -- making things -------------------------------------------------------------------------
    def add_key(self, machine: Machine, names: Names, public_key: str) -> Resource:
        key = self.call(
            "registering the SSH key",
            self._client().ssh_keys.create,
            name=names.resource,
            public_key=public_key,
            labels=labels_of(names),
            idempotent=False,
        )
        return Resource("key", str(key.id), names.resource)

    def add_firewall(self, machine: Machine, names: Names, sources, vm) -> Resource:
        rules = [
            FirewallRule(
                direction="in",
                protocol="tcp",
                port=str(port),
                source_ips=sources,
                description="SSH" if port == machine.ssh_port else "Docker (TLS)",
            )
            for port in sorted({machine.ssh_port, machine.engine_port})
        ]
        made = self.call(
            "creating the firewall",
            self._client().firewalls.create,
            name=names.resource,
            rules=rules,
            labels=labels_of(names),
            idempotent=False,
        )
        return Resource("firewall", str(made.firewall.id), names.resource)

    def add_vm(self, machine: Machine, names: Names, key, firewall) -> Resource:
        opts = machine.driver_options
        extra_firewalls = [self._named("firewall", n) for n in opts.get("firewalls", [])]
        networks = [self._named("network", n) for n in opts.get("networks", [])]
        made = self.call(
            "creating the server",
            self._client().servers.create,
            name=machine.name,
            server_type=ServerType(name=opts["server_type"]),
            image=HImage(name=opts["image"]),
            location=Location(name=opts["server_location"]),
            ssh_keys=[SSHKey(id=int(key.id))],
            firewalls=[Firewall(id=int(firewall.id)), *extra_firewalls],
            networks=networks or None,
            user_data=opts.get("user_data") or None,
            labels={**opts.get("labels", {}), **labels_of(names)},
            idempotent=False,
        )
        return Resource("vm", str(made.server.id), machine.name)

    def _named(self, kind: str, ref: str):
        """A firewall or network of the project by ID or name, as the flags give them."""
        cls = Firewall if kind == "firewall" else Network
        if ref.isdigit():
            return cls(id=int(ref))
        group = self._client().firewalls if kind == "firewall" else self._client().networks
        found = self.call(f"looking up the {kind} {ref}", group.get_by_name, ref)
        if found is None:
            raise CloudError(f"There is no {kind} named {ref!r} in this Hetzner Cloud project")
        return cls(id=found.id)

    # -- the server ----------------------------------------------------------------------------
    def find_vm(self, vm_id: str) -> VM | None:
        server = self.call(
            f"reading server {vm_id}", self._client().servers.get_by_id, int(vm_id), missing_ok=True
        )
        if server is None:
            return None
        ipv4 = server.public_net.ipv4 if server.public_net else None
        ip = ipv4.ip if ipv4 is not None and not ipv4.blocked else ""
        return VM(vm_id, server.status, STATES.get(server.status, "error"), ip or "")

    def power(self, vm_id: str, action: str) -> None:
        method = getattr(self._client().servers, POWER[action])
        started = self.call(
            f"asking for {POWER[action]} of server {vm_id}",
            method,
            Server(id=int(vm_id)),
            idempotent=action != "reboot",
        )
        self._wait_action(started.id, f"{POWER[action]} of server {vm_id}")

    def _wait_action(self, action_id: int, what: str) -> None:
        deadline = time.monotonic() + settings.CLOUD_BOOT_TIMEOUT
        while True:
            action = self.call(f"following {what}", self._client().actions.get_by_id, action_id)
            if action.status == "success":
                return
            if action.status == "error":
                error = (action.error or {}).get("message", "no reason given")
                raise CloudError(f"Hetzner Cloud's {what} (action {action_id}) failed: {error}")
            if time.monotonic() > deadline:
                raise CloudError(f"Hetzner Cloud's {what} (action {action_id}) did not finish")
            time.sleep(settings.CLOUD_POLL_INTERVAL)

    # -- removing ------------------------------------------------------------------------------
    def delete(self, resource: Resource) -> None:
        hc, rid = self._client(), int(resource.id)
        what = f"deleting {self._noun(resource.kind)} {resource.id}"
        if resource.kind == "vm":
            action = self.call(what, hc.servers.delete, Server(id=rid), missing_ok=True)
            if action is not None:
                self._wait_action(action.id, f"deletion of server {rid}")
        elif resource.kind == "firewall":
            self.call(what, hc.firewalls.delete, Firewall(id=rid), missing_ok=True)
        elif resource.kind == "key":
            self.call(what, hc.ssh_keys.delete, SSHKey(id=rid), missing_ok=True)

    def leftovers(self, machine: Machine, names: Names) -> list[Resource]:
        hc = self._client()
        selector = ",".join(f"{k}={v}" for k, v in labels_of(names).items())
        found = []
        for kind, group in (("vm", hc.servers), ("firewall", hc.firewalls), ("key", hc.ssh_keys)):
            listed = self.call(f"listing {kind}s by label", group.get_all, label_selector=selector)
            found += [Resource(kind, str(item.id), item.name) for item in listed]
        return found


def _size(server_type) -> Size:
    """Offered where a location lists it available and not deprecated (per-location server
    types, Hetzner's changelog of 2025-09-24)."""
    prices = {p["location"]: float(p["price_monthly"]["gross"]) for p in server_type.prices or []}
    offered = [
        loc.location.name
        for loc in server_type.locations or []
        if loc.available is not False and loc.deprecation is None
    ]
    return Size(
        slug=server_type.name,
        vcpus=int(server_type.cores or 0),
        memory_mb=int(float(server_type.memory or 0) * 1024),
        disk_gb=int(server_type.disk or 0),
        prices=prices,
        currency="€",
        regions=frozenset(offered),
        architecture=server_type.architecture or "x86",
    )


def _system_images(hc: Client) -> list[dict]:
    """The system images as the API answers them, every page. Read raw: hcloud 2.27 keeps
    only `deprecation`, while Hetzner's published OpenAPI document gives images `deprecated`
    (a date, or null); filtered here, not with status= (hcloud sends per_page as it)."""
    images, page = [], 1
    while page:
        params = {"type": "system", "page": page, "per_page": 50}
        answer = hc.request("GET", "/images", params=params)
        images += answer.get("images") or []
        page = ((answer.get("meta") or {}).get("pagination") or {}).get("next_page")
    return images


def _deprecated(image: dict) -> bool:
    """Deprecated by either field: `deprecated` (a date: from then on it is) as documented,
    or the `deprecation` object (announced, unavailable_after) of newer answers."""
    return bool(image.get("deprecated") or image.get("deprecation"))
