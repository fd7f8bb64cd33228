"""digitalocean: a droplet per machine (docker-machine's `-d digitalocean`), on pydo.

Each machine gets its own SSH key registered with DigitalOcean, a droplet tagged with this
dashboard's instance and the machine, and a cloud firewall opening SSH and Docker only; rm
deletes the four (the machine's tag too) and lists by tag that none is left.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from django.conf import settings

from machines.drivers.cloud import (
    VM,
    Catalog,
    CloudDriver,
    CloudError,
    Image,
    Names,
    Region,
    Resource,
    Size,
)

from . import api
from .forms import PUBLIC_API, DigitalOceanOptionsForm, DigitalOceanSettingsForm

if TYPE_CHECKING:
    from machines.models import Machine

STATES = {"new": "starting", "active": "running", "off": "stopped", "archive": "error"}
ACTIONS = {"on": "power_on", "off": "power_off", "shutdown": "shutdown", "reboot": "reboot"}
ALL_TRAFFIC = {"addresses": ["0.0.0.0/0", "::/0"]}


def instance_tag(names: Names) -> str:
    return f"dockerdash:{names.instance}"


def machine_tag(names: Names) -> str:
    # '.' may be in a machine's name but not in a tag; '_' is in no machine's name.
    return f"dockerdash:{names.instance}:{names.machine.replace('.', '_')}"


class DigitalOceanDriver(CloudDriver):
    kind = "digitalocean"
    label = "DigitalOcean"
    description = "a droplet at DigitalOcean"
    provider = "DigitalOcean"
    vm_noun = "droplet"
    public_api_url = PUBLIC_API
    settings_form = DigitalOceanSettingsForm
    options_form = DigitalOceanOptionsForm
    token_field = "access_token"  # noqa: S105 (a field name)
    secret_fields = ("access_token",)
    cli_env = {"access_token": "DIGITALOCEAN_ACCESS_TOKEN", "api_url": "DIGITALOCEAN_API_URL"}
    cli_flag_names = {"ssh_key": "--digitalocean-ssh-key-path"}
    cli_file_fields = frozenset({"ssh_key", "userdata"})

    def failure_of(self, error: BaseException):
        return api.failure_of(error, self.api_url)

    def _client(self):
        if not hasattr(self, "_pydo"):
            self._pydo = api.client(self.token, self.api_url)
        return self._pydo

    def _do(self, what: str, method: str, *args, idempotent=True, missing_ok=False, **kw):
        group, name = method.split(".")
        fn = getattr(getattr(self._client(), group), name)
        return self.call(
            what, api.answer, fn, *args, idempotent=idempotent, missing_ok=missing_ok, **kw
        )

    def _all(self, what: str, method: str, key: str, **params) -> list[dict]:
        """Every item of a listing, page after page (links.pages.next)."""
        items: list[dict] = []
        page: int | None = 1
        while page:
            body = self._do(what, method, per_page=api.PER_PAGE, page=page, **params)
            items += body.get(key) or []
            page = api.next_page(body, page)
        return items

    # -- what the account sees -------------------------------------------------------------
    def fetch_catalog(self) -> Catalog:
        found = self._all("listing regions", "regions.list", "regions")
        sizes = self._all("listing sizes", "sizes.list", "sizes")
        images = self._all("listing images", "images.list", "images", type="distribution")
        return Catalog(
            regions=[Region(r["slug"], r.get("name", ""), bool(r.get("available"))) for r in found],
            sizes=[_size(s) for s in sizes],
            images=[
                Image(i["slug"], f"{i.get('distribution', '')} {i.get('name', '')}".strip())
                for i in images
                if i.get("slug") and i.get("status", "available") == "available"
            ],
            preferred_region="nyc3",  # docker-machine's default
            preferred_image="debian-12-x64",
        )

    def describe_account(self) -> str:
        account = self._do("reading the account", "account.get")["account"]
        droplets = self._do("counting droplets", "droplets.list", per_page=1, page=1)
        count = (droplets.get("meta") or {}).get("total", len(droplets.get("droplets") or []))
        team = (account.get("team") or {}).get("name")
        regions = [r for r in self.catalog().regions if r.available]
        return (
            f"DigitalOcean accepts the token: {account.get('email', 'an account')}"
            + (f" (team {team})" if team else "")
            + f", status {account.get('status', 'unknown')}; {count} droplet(s) of a limit of "
            f"{account.get('droplet_limit', '?')}; {len(regions)} regions available"
        )

    # -- making things -------------------------------------------------------------------------
    def add_key(self, machine: Machine, names: Names, public_key: str) -> Resource:
        body = {"name": names.resource, "public_key": f"{public_key} {names.resource}"}
        key = self._do("registering the SSH key", "ssh_keys.create", body, idempotent=False)
        return Resource("key", str(key["ssh_key"]["id"]), names.resource)

    def add_vm(self, machine: Machine, names: Names, key, firewall) -> Resource:
        opts = machine.driver_options
        body = {
            "name": machine.name,
            "region": opts["region"],
            "size": opts["size"],
            "image": opts["image"],
            "ssh_keys": [int(key.id) if key else opts["ssh_key_fingerprint"]],
            "tags": [instance_tag(names), machine_tag(names), *opts.get("tags", [])],
        }
        for flag in ("backups", "ipv6", "monitoring", "private_networking"):
            if opts.get(flag):
                body[flag] = True
        if opts.get("userdata"):
            body["user_data"] = opts["userdata"]
        droplet = self._do("creating the droplet", "droplets.create", body, idempotent=False)
        return Resource("vm", str(droplet["droplet"]["id"]), machine.name)

    def add_firewall(self, machine: Machine, names: Names, sources, vm) -> Resource:
        ports = sorted({machine.ssh_port, machine.engine_port})
        body = {
            "name": names.resource,
            "inbound_rules": [
                {"protocol": "tcp", "ports": str(port), "sources": {"addresses": sources}}
                for port in ports
            ],
            # Without outbound rules a DigitalOcean firewall blocks all outgoing traffic, and
            # the host could not even install Docker.
            "outbound_rules": [
                {"protocol": proto, "ports": "0", "destinations": ALL_TRAFFIC}
                for proto in ("tcp", "udp", "icmp")
            ],
            "droplet_ids": [int(vm.id)],
            "tags": [machine_tag(names)],
        }
        made = self._do("creating the firewall", "firewalls.create", body, idempotent=False)
        return Resource("firewall", made["firewall"]["id"], names.resource)

    # -- the droplet ---------------------------------------------------------------------------
    def find_vm(self, vm_id: str) -> VM | None:
        found = self._do(f"reading droplet {vm_id}", "droplets.get", int(vm_id), missing_ok=True)
        if found is None:
            return None
        droplet = found["droplet"]
        v4 = (droplet.get("networks") or {}).get("v4") or []
        ip = next((n["ip_address"] for n in v4 if n.get("type") == "public"), "")
        status = droplet.get("status", "")
        return VM(vm_id, status, STATES.get(status, "error"), ip)

    def power(self, vm_id: str, action: str) -> None:
        kind = ACTIONS[action]
        started = self._do(
            f"asking for {kind} of droplet {vm_id}",
            "droplet_actions.post",
            int(vm_id),
            {"type": kind},
            idempotent=action != "reboot",
        )["action"]
        self._wait_action(started["id"], f"{kind} of droplet {vm_id}")

    def _wait_action(self, action_id: int, what: str) -> None:
        deadline = time.monotonic() + settings.CLOUD_BOOT_TIMEOUT
        while True:
            action = self._do(f"following {what}", "actions.get", action_id)["action"]
            if action["status"] == "completed":
                return
            if action["status"] == "errored":
                raise CloudError(f"DigitalOcean's {what} (action {action_id}) errored")
            if time.monotonic() > deadline:
                raise CloudError(f"DigitalOcean's {what} (action {action_id}) did not complete")
            time.sleep(settings.CLOUD_POLL_INTERVAL)

    # -- removing ------------------------------------------------------------------------------
    def delete(self, resource: Resource) -> None:
        what = f"deleting {self._noun(resource.kind)} {resource.id}"
        if resource.kind == "vm":
            self._do(what, "droplets.destroy", int(resource.id), missing_ok=True)
            deadline = time.monotonic() + settings.CLOUD_BOOT_TIMEOUT
            while self.find_vm(resource.id) is not None and time.monotonic() < deadline:
                time.sleep(settings.CLOUD_POLL_INTERVAL)
        elif resource.kind == "firewall":
            self._do(what, "firewalls.delete", resource.id, missing_ok=True)
        elif resource.kind == "key":
            self._do(what, "ssh_keys.delete", int(resource.id), missing_ok=True)
        elif resource.kind == "tag":
            self._do(what, "tags.delete", resource.id, missing_ok=True)

    def leftovers(self, machine: Machine, names: Names) -> list[Resource]:
        tag = machine_tag(names)
        found = [
            Resource("vm", str(d["id"]), d.get("name", ""))
            for d in self._all("listing droplets", "droplets.list", "droplets", tag_name=tag)
        ]
        found += [
            Resource("firewall", f["id"], f.get("name", ""))
            for f in self._all("listing firewalls", "firewalls.list", "firewalls")
            if tag in (f.get("tags") or []) or f.get("name") == names.resource
        ]
        found += [
            Resource("key", str(k["id"]), k["name"])
            for k in self._all("listing SSH keys", "ssh_keys.list", "ssh_keys")
            if k.get("name") == names.resource
        ]
        if self._do(f"looking up tag {tag}", "tags.get", tag, missing_ok=True) is not None:
            found.append(Resource("tag", tag, tag))
        return found


def _size(size: dict) -> Size:
    return Size(
        slug=size["slug"],
        vcpus=int(size.get("vcpus", 0)),
        memory_mb=int(size.get("memory", 0)),
        disk_gb=int(size.get("disk", 0)),
        prices={"": float(size["price_monthly"])} if size.get("price_monthly") is not None else {},
        currency="$",
        regions=frozenset(size.get("regions") or []),
        available=bool(size.get("available", True)),
    )
