"""A fake of DigitalOcean's API v2: the endpoints the digitalocean driver calls.

Paths, status codes, bodies, pagination (`links.pages` and `meta.total`), rate-limit headers,
error bodies (`{"id": ..., "message": ...}`) and asynchronous actions (`POST
/v2/droplets/{id}/actions`, then `GET /v2/actions/{id}` from in-progress to completed) follow
DigitalOcean's published OpenAPI description, https://github.com/digitalocean/openapi at
commit 7c1300c479fed9c353cda9fc21cd968619552304 (2026-08-07): specification/resources/
{account,actions,droplets,firewalls,images,regions,sizes,ssh_keys,tags} and
specification/shared/{pages,headers,responses}.yml. Each droplet is a real fleet host
(hosts.py), booted in the background after the 202 as DigitalOcean boots one.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from .server import Answer, FakeAPI, Request, fingerprint

REGIONS = [
    ("nyc1", "New York 1", True),
    ("nyc3", "New York 3", True),
    ("ams3", "Amsterdam 3", True),
    ("fra1", "Frankfurt 1", True),
    ("lon1", "London 1", True),
    ("sfo2", "San Francisco 2", False),
    ("sgp1", "Singapore 1", True),
]
# slug, vcpus, memory MB, disk GB, $/month, regions (None: every available one)
SIZES = [
    ("s-1vcpu-512mb-10gb", 1, 512, 10, 4.0, None),
    ("s-1vcpu-1gb", 1, 1024, 25, 6.0, None),
    ("s-1vcpu-2gb", 1, 2048, 50, 12.0, None),
    ("s-2vcpu-2gb", 2, 2048, 60, 18.0, None),
    ("s-2vcpu-4gb", 2, 4096, 80, 24.0, None),
    ("s-4vcpu-8gb", 4, 8192, 160, 48.0, None),
    ("c-2", 2, 4096, 25, 42.0, ["nyc3", "fra1"]),
    ("g-2vcpu-8gb", 2, 8192, 25, 63.0, ["nyc3", "ams3"]),
]
IMAGES = [
    ("debian-12-x64", "Debian", "12 x64"),
    ("debian-11-x64", "Debian", "11 x64"),
    ("ubuntu-24-04-x64", "Ubuntu", "24.04 (LTS) x64"),
    ("ubuntu-22-04-x64", "Ubuntu", "22.04 (LTS) x64"),
    ("fedora-41-x64", "Fedora", "41 x64"),
    ("rockylinux-9-x64", "Rocky Linux", "9 x64"),
]
POWER = {"power_on", "power_off", "shutdown", "reboot", "power_cycle"}


class DigitalOceanFake(FakeAPI):
    prefix = "/v2"
    routes = [
        ("GET", r"/account", "account"),
        ("GET", r"/regions", "list_regions"),
        ("GET", r"/sizes", "list_sizes"),
        ("GET", r"/images", "list_images"),
        ("GET", r"/account/keys", "list_keys"),
        ("POST", r"/account/keys", "create_key"),
        ("DELETE", r"/account/keys/([^/]+)", "delete_key"),
        ("GET", r"/droplets", "list_droplets"),
        ("POST", r"/droplets", "create_droplet"),
        ("GET", r"/droplets/(\d+)", "get_droplet"),
        ("DELETE", r"/droplets/(\d+)", "delete_droplet"),
        ("POST", r"/droplets/(\d+)/actions", "droplet_action"),
        ("GET", r"/actions/(\d+)", "get_action"),
        ("GET", r"/firewalls", "list_firewalls"),
        ("POST", r"/firewalls", "create_firewall"),
        ("DELETE", r"/firewalls/([0-9a-f-]+)", "delete_firewall"),
        ("GET", r"/tags/([A-Za-z0-9_:-]+)", "get_tag"),
        ("DELETE", r"/tags/([A-Za-z0-9_:-]+)", "delete_tag"),
    ]

    def __init__(self, token: str, hosts=None) -> None:
        super().__init__(token, hosts)
        self.keys: dict[int, dict] = {}
        self.droplets: dict[int, dict] = {}
        self.firewalls: dict[str, dict] = {}
        self.tags: set[str] = set()
        self.actions: dict[int, dict] = {}
        self.machines: dict[int, object] = {}  # droplet id -> its fleet host
        #: Failure modes of the droplets to come: no address ever, or SSH that never answers.
        self.withhold_ip = False
        self.silent_ssh = False

    @property
    def url(self) -> str:
        """The account's API URL (pydo adds /v2/...)."""
        return self.base_url

    # -- the provider's conventions -------------------------------------------------------------
    def headers(self, remaining: int = 4999) -> dict[str, str]:
        return {
            "ratelimit-limit": "5000",
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": str(int(time.time()) + 1),
        }

    def error(self, status: int, code: str, message: str) -> Answer:
        return status, {"id": code, "message": message}, self.headers()

    def too_many(self) -> Answer:
        return (
            429,
            {"id": "too_many_requests", "message": "API rate limit exceeded."},
            {**self.headers(0)},
        )

    def ok(self, body: dict | None, status: int = 200) -> Answer:
        return status, body, self.headers()

    def page(self, req: Request, key: str, items: list[dict]) -> dict:
        per_page = min(int(req.arg("per_page", "20")), self.max_per_page, 200)
        page = max(1, int(req.arg("page", "1")))
        last = max(1, -(-len(items) // per_page))
        params = {k: v[0] for k, v in req.query.items() if k not in ("page", "per_page")}

        def link(n: int) -> str:
            query = urlencode({**params, "page": n, "per_page": per_page})
            return f"{self.base_url}{req.path}?{query}"

        pages = {}
        if page < last:
            pages.update(next=link(page + 1), last=link(last))
        if page > 1:
            pages.update(first=link(1), prev=link(page - 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        return {key: chunk, "links": {"pages": pages}, "meta": {"total": len(items)}}

    # -- catalog and account --------------------------------------------------------------------
    def account(self, req: Request) -> Answer:
        account = {
            "droplet_limit": 25,
            "floating_ip_limit": 3,
            "email": "ops@example.com",
            "name": "Ops",
            "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
            "email_verified": True,
            "status": "active",
            "status_message": "",
            "team": {"uuid": "5df3e3004a17e242b7c20ca6c9fc25b701a47ece", "name": "Ops team"},
        }
        return self.ok({"account": account})

    def list_regions(self, req: Request) -> Answer:
        regions = [
            {
                "slug": slug,
                "name": name,
                "available": available,
                "features": ["backups", "ipv6", "metadata", "install_agent", "storage"],
                "sizes": [s[0] for s in SIZES if s[5] is None or slug in s[5]] if available else [],
            }
            for slug, name, available in REGIONS
        ]
        return self.ok(self.page(req, "regions", regions))

    def list_sizes(self, req: Request) -> Answer:
        available = [slug for slug, _, up in REGIONS if up]
        sizes = [
            {
                "slug": slug,
                "memory": memory,
                "vcpus": vcpus,
                "disk": disk,
                "transfer": 1.0,
                "price_monthly": price,
                "price_hourly": round(price / 672, 5),
                "regions": regions or available,
                "available": True,
                "description": "Basic",
            }
            for slug, vcpus, memory, disk, price, regions in SIZES
        ]
        return self.ok(self.page(req, "sizes", sizes))

    def list_images(self, req: Request) -> Answer:
        images = [
            self._image(slug) for slug, _, _ in IMAGES if req.arg("type") in ("", "distribution")
        ]
        return self.ok(self.page(req, "images", images))

    def _image(self, slug: str) -> dict:
        _, distribution, name = next(i for i in IMAGES if i[0] == slug)
        return {
            "id": 100000 + IMAGES.index(next(i for i in IMAGES if i[0] == slug)),
            "name": name,
            "distribution": distribution,
            "slug": slug,
            "public": True,
            "regions": [r[0] for r in REGIONS if r[2]],
            "created_at": "2026-05-15T05:47:50Z",
            "type": "base",
            "min_disk_size": 10,
            "size_gigabytes": 2.36,
            "description": "",
            "tags": [],
            "status": "available",
            "error_message": "",
        }

    # -- SSH keys -------------------------------------------------------------------------------
    def list_keys(self, req: Request) -> Answer:
        return self.ok(self.page(req, "ssh_keys", list(self.keys.values())))

    def create_key(self, req: Request) -> Answer:
        name, public = req.body.get("name"), str(req.body.get("public_key") or "")
        if not name or len(public.split()) < 2:
            return self.error(422, "unprocessable_entity", "Key invalid, name and key required")
        try:
            fp = fingerprint(public)
        except ValueError:
            return self.error(422, "unprocessable_entity", "Key invalid type")
        if any(k["fingerprint"] == fp for k in self.keys.values()):
            return self.error(
                422, "unprocessable_entity", "SSH Key is already in use on your account"
            )
        key = {"id": self.next_id(), "fingerprint": fp, "public_key": public, "name": name}
        self.keys[key["id"]] = key
        return self.ok({"ssh_key": key}, 201)

    def _key(self, ref) -> dict | None:
        return next(
            (k for k in self.keys.values() if str(ref) in (str(k["id"]), k["fingerprint"])), None
        )

    def delete_key(self, req: Request, ref: str) -> Answer:
        key = self._key(ref)
        if key is None:
            return self.error(404, "not_found", "The resource you requested could not be found.")
        del self.keys[key["id"]]
        return self.ok(None, 204)

    # -- droplets -------------------------------------------------------------------------------
    def list_droplets(self, req: Request) -> Answer:
        droplets = [
            d
            for d in self.droplets.values()
            if not req.arg("tag_name") or req.arg("tag_name") in d["tags"]
        ]
        return self.ok(self.page(req, "droplets", droplets))

    def create_droplet(self, req: Request) -> Answer:
        body = req.body
        region, size, image = body.get("region"), body.get("size"), body.get("image")
        if not body.get("name") or not region or not size or not image:
            return self.error(
                422, "unprocessable_entity", "name, region, size and image are required"
            )
        if not any(r[0] == region and r[2] for r in REGIONS):
            return self.error(
                422, "unprocessable_entity", "You specified an invalid region for Droplet creation."
            )
        if not any(s[0] == size and (s[5] is None or region in s[5]) for s in SIZES):
            return self.error(
                422, "unprocessable_entity", "You specified an invalid size for Droplet creation."
            )
        if not any(i[0] == image for i in IMAGES):
            return self.error(
                422, "unprocessable_entity", "You specified an invalid image for Droplet creation."
            )
        keys = [self._key(ref) for ref in body.get("ssh_keys") or []]
        if None in keys:
            return self.error(422, "unprocessable_entity", "ssh_keys: unknown SSH key")
        tags = list(body.get("tags") or [])
        self.tags.update(tags)
        droplet = self._droplet(body, size, region, image, tags)
        self.droplets[droplet["id"]] = droplet
        action = self._action("create", droplet)
        self.later(lambda: self._boot(droplet["id"], [k["public_key"] for k in keys], action))
        href = f"{self.base_url}/v2/actions/{action['id']}"
        links = {"actions": [{"id": action["id"], "rel": "create", "href": href}]}
        return self.ok({"droplet": droplet, "links": links}, 202)

    def _droplet(self, body: dict, size: str, region: str, image: str, tags: list) -> dict:
        slug, vcpus, memory, disk, price, _ = next(s for s in SIZES if s[0] == size)
        features = [f for f in ("backups", "ipv6", "monitoring") if body.get(f)]
        return {
            "id": self.next_id(),
            "name": body["name"],
            "memory": memory,
            "vcpus": vcpus,
            "disk": disk,
            "locked": False,
            "status": "new",
            "kernel": None,
            "created_at": self.now(),
            "features": [*features, "private_networking"],
            "backup_ids": [],
            "next_backup_window": None,
            "snapshot_ids": [],
            "image": self._image(image),
            "volume_ids": [],
            "size": {
                "slug": slug,
                "memory": memory,
                "vcpus": vcpus,
                "disk": disk,
                "price_monthly": price,
                "available": True,
            },
            "size_slug": slug,
            "networks": {"v4": [], "v6": []},
            "region": {
                "slug": region,
                "name": dict((r[0], r[1]) for r in REGIONS)[region],
                "available": True,
            },
            "tags": tags,
            "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000",
            "user_data": body.get("user_data"),
        }

    def _boot(self, droplet_id: int, public_keys: list[str], action: dict) -> None:
        host = self.hosts.boot(public_keys)
        with self.lock:
            self.machines[droplet_id] = host
            if self.silent_ssh:
                host.pause()
            droplet = self.droplets.get(droplet_id)
            if droplet is None:  # deleted while it booted
                host.remove()
                return
            if not self.withhold_ip:
                droplet["status"] = "active"
                self._address(droplet, host.ip)
                self._done(action)

    def _address(self, droplet: dict, ip: str) -> None:
        droplet["networks"]["v4"] = [
            {
                "ip_address": "10.110.0.2",
                "netmask": "255.255.240.0",
                "gateway": "",
                "type": "private",
            },
            {"ip_address": ip, "netmask": "255.255.0.0", "gateway": "", "type": "public"},
        ]

    def get_droplet(self, req: Request, droplet_id: str) -> Answer:
        droplet = self.droplets.get(int(droplet_id))
        if droplet is None:
            return self.error(404, "not_found", "The resource you requested could not be found.")
        return self.ok({"droplet": droplet})

    def delete_droplet(self, req: Request, droplet_id: str) -> Answer:
        droplet = self.droplets.pop(int(droplet_id), None)
        if droplet is None:
            return self.error(404, "not_found", "The resource you requested could not be found.")
        for firewall in self.firewalls.values():
            if droplet["id"] in firewall["droplet_ids"]:
                firewall["droplet_ids"].remove(droplet["id"])
        if host := self.machines.pop(droplet["id"], None):
            host.remove()
        return self.ok(None, 204)

    # -- actions --------------------------------------------------------------------------------
    def _action(self, kind: str, droplet: dict) -> dict:
        action = {
            "id": self.next_id(),
            "status": "in-progress",
            "type": kind,
            "started_at": self.now(),
            "completed_at": None,
            "resource_id": droplet["id"],
            "resource_type": "droplet",
            "region": droplet["region"],
            "region_slug": droplet["region"]["slug"],
        }
        self.actions[action["id"]] = action
        return action

    def _done(self, action: dict, status: str = "completed") -> None:
        action.update(status=status, completed_at=self.now())

    def get_action(self, req: Request, action_id: str) -> Answer:
        action = self.actions.get(int(action_id))
        if action is None:
            return self.error(404, "not_found", "The resource you requested could not be found.")
        return self.ok({"action": action})

    def droplet_action(self, req: Request, droplet_id: str) -> Answer:
        droplet = self.droplets.get(int(droplet_id))
        if droplet is None:
            return self.error(404, "not_found", "The resource you requested could not be found.")
        kind = req.body.get("type")
        if kind not in POWER:
            return self.error(422, "unprocessable_entity", f"{kind} is not a valid action type")
        action = self._action(kind, droplet)
        self.later(lambda: self._power(droplet, kind, action))
        return self.ok({"action": action}, 201)

    def _power(self, droplet: dict, kind: str, action: dict) -> None:
        host = self.machines[droplet["id"]]
        if kind == "power_off":
            host.kill()
        elif kind == "shutdown":
            host.stop()
        elif kind == "power_on":
            host.start()
        else:
            host.restart()
        with self.lock:
            on = kind not in ("power_off", "shutdown")
            droplet["status"] = "active" if on else "off"
            if on:
                self._address(droplet, host.ip)
            self._done(action)

    # -- firewalls and tags ---------------------------------------------------------------------
    def list_firewalls(self, req: Request) -> Answer:
        return self.ok(self.page(req, "firewalls", list(self.firewalls.values())))

    def create_firewall(self, req: Request) -> Answer:
        body = req.body
        missing = [t for t in body.get("tags") or [] if t not in self.tags]
        if missing:
            return self.error(400, "bad_request", f"tag {missing[0]} does not exist")
        unknown = [d for d in body.get("droplet_ids") or [] if d not in self.droplets]
        if unknown:
            return self.error(400, "bad_request", f"droplet {unknown[0]} does not exist")
        firewall = {
            "id": f"{self.next_id():08x}-3d72-467b-8602-280330ecd65c",
            "name": body.get("name"),
            "status": "succeeded",
            "created_at": self.now(),
            "pending_changes": [],
            "inbound_rules": body.get("inbound_rules") or [],
            "outbound_rules": body.get("outbound_rules") or [],
            "droplet_ids": list(body.get("droplet_ids") or []),
            "tags": list(body.get("tags") or []),
        }
        self.firewalls[firewall["id"]] = firewall
        return self.ok({"firewall": firewall}, 202)

    def delete_firewall(self, req: Request, firewall_id: str) -> Answer:
        if self.firewalls.pop(firewall_id, None) is None:
            return self.error(404, "not_found", "The resource you requested could not be found.")
        return self.ok(None, 204)

    def get_tag(self, req: Request, name: str) -> Answer:
        if name not in self.tags:
            return self.error(404, "not_found", "The resource you requested could not be found.")
        tagged = [d for d in self.droplets.values() if name in d["tags"]]
        resources = {"count": len(tagged), "droplets": {"count": len(tagged)}}
        return self.ok({"tag": {"name": name, "resources": resources}})

    def delete_tag(self, req: Request, name: str) -> Answer:
        if name not in self.tags:
            return self.error(404, "not_found", "The resource you requested could not be found.")
        self.tags.discard(name)
        for droplet in self.droplets.values():
            if name in droplet["tags"]:
                droplet["tags"].remove(name)
        return self.ok(None, 204)

    # -- the console: what a user does behind dockerdash's back ---------------------------------
    def console_power_off(self, droplet_id: int) -> None:
        self.machines[droplet_id].kill()
        with self.lock:
            self.droplets[droplet_id]["status"] = "off"

    def console_delete(self, droplet_id: int) -> None:
        with self.lock:
            self.droplets.pop(droplet_id)
            host = self.machines.pop(droplet_id)
        host.remove()

    def left(self) -> dict[str, list]:
        """Everything the account still has (the instance's shared tag aside)."""
        return {
            "droplets": sorted(self.droplets),
            "keys": sorted(k["name"] for k in self.keys.values()),
            "firewalls": sorted(f["name"] for f in self.firewalls.values()),
            "tags": sorted(t for t in self.tags if t.count(":") > 1),
            "hosts": self.hosts.alive() if self.hosts else [],
        }
