"""A fake of the Hetzner Cloud API v1: the endpoints the hetzner driver calls.

Paths, status codes, bodies, pagination (`meta.pagination` with next_page and last_page),
label selectors, error bodies (`{"error": {"code", "message", "details"}}`), the rate limit
(429 `rate_limit_exceeded` with RateLimit-* headers) and actions (`running` to `success`,
followed with `GET /v1/actions/{id}`) follow the Hetzner Cloud API reference,
https://docs.hetzner.cloud/reference/cloud, as of its changelog entries of 2025-09-24
(per-location server types); images carry `deprecated` (an ISO-8601 date or null) as in
Hetzner's published OpenAPI document, and one of them the `deprecation` object that
hcloud-python 2.27.0 (the client the driver uses) parses instead. Each server is a
real fleet host (hosts.py), booted after the 201.
"""

from __future__ import annotations

import time

from .server import Answer, FakeAPI, Request, fingerprint

LOCATIONS = [
    ("fsn1", "Falkenstein DC Park 1", "DE", "Falkenstein", "eu-central"),
    ("nbg1", "Nuremberg DC Park 1", "DE", "Nuremberg", "eu-central"),
    ("hel1", "Helsinki DC Park 1", "FI", "Helsinki", "eu-central"),
    ("ash", "Ashburn, VA", "US", "Ashburn, VA", "us-east"),
    ("sin", "Singapore", "SG", "Singapore", "ap-southeast"),
]
EU = ("fsn1", "nbg1", "hel1")
EVERYWHERE = tuple(loc[0] for loc in LOCATIONS)
# name, cores, memory GB, disk GB, architecture, EUR/month (gross), locations, deprecated
SERVER_TYPES = [
    ("cx11", 1, 2.0, 20, "x86", 3.29, EU, True),
    ("cx22", 2, 4.0, 40, "x86", 3.79, EU, False),
    ("cax11", 2, 4.0, 40, "arm", 3.79, EU, False),
    ("cpx11", 2, 2.0, 40, "x86", 4.35, EVERYWHERE, False),
    ("cpx21", 3, 4.0, 80, "x86", 7.55, EVERYWHERE, False),
    ("cx32", 4, 8.0, 80, "x86", 6.80, EU, False),
    ("ccx13", 2, 8.0, 80, "x86", 12.49, EVERYWHERE, False),
]
# name, description, flavor, version, architectures
IMAGES = [
    ("debian-12", "Debian 12", "debian", "12", ("x86", "arm")),
    ("debian-11", "Debian 11", "debian", "11", ("x86",)),
    ("ubuntu-24.04", "Ubuntu 24.04", "ubuntu", "24.04", ("x86", "arm")),
    ("ubuntu-22.04", "Ubuntu 22.04", "ubuntu", "22.04", ("x86",)),
    ("fedora-41", "Fedora 41", "fedora", "41", ("x86",)),
    ("rocky-9", "Rocky Linux 9", "rocky", "9", ("x86",)),
    ("centos-stream-8", "CentOS Stream 8", "centos", "8", ("x86",)),
    ("fedora-39", "Fedora 39", "fedora", "39", ("x86",)),
]
# Deprecated images: by the documented `deprecated` date, or by a `deprecation` object.
DEPRECATED = {"centos-stream-8": "2024-06-01T00:00:00+00:00"}
DEPRECATION = {
    "fedora-39": {
        "announced": "2024-10-01T00:00:00+00:00",
        "unavailable_after": "2025-01-01T00:00:00+00:00",
    }
}
POWER = {
    "poweron": ("start_server", "running"),
    "poweroff": ("stop_server", "off"),
    "shutdown": ("shutdown_server", "off"),
    "reboot": ("reboot_server", "running"),
    "reset": ("reset_server", "running"),
}
NOT_FOUND = "not_found"


def _selected(labels: dict[str, str], selector: str) -> bool:
    """The equality terms of a label selector ("k=v,k2=v2", "k", "!k")."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "=" in term:
            key, _, value = term.partition("=")
            if labels.get(key.rstrip("=!")) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class HetznerFake(FakeAPI):
    prefix = "/v1"
    routes = [
        ("GET", r"/locations", "list_locations"),
        ("GET", r"/server_types", "list_server_types"),
        ("GET", r"/images", "list_images"),
        ("GET", r"/ssh_keys", "list_keys"),
        ("POST", r"/ssh_keys", "create_key"),
        ("DELETE", r"/ssh_keys/(\d+)", "delete_key"),
        ("GET", r"/firewalls", "list_firewalls"),
        ("POST", r"/firewalls", "create_firewall"),
        ("DELETE", r"/firewalls/(\d+)", "delete_firewall"),
        ("GET", r"/servers", "list_servers"),
        ("POST", r"/servers", "create_server"),
        ("GET", r"/servers/(\d+)", "get_server"),
        ("DELETE", r"/servers/(\d+)", "delete_server"),
        ("POST", r"/servers/(\d+)/actions/(\w+)", "server_action"),
        ("GET", r"/actions/(\d+)", "get_action"),
    ]

    def __init__(self, token: str, hosts=None) -> None:
        super().__init__(token, hosts)
        self.keys: dict[int, dict] = {}
        self.firewalls: dict[int, dict] = {}
        self.servers: dict[int, dict] = {}
        self.actions: dict[int, dict] = {}
        self.machines: dict[int, object] = {}
        self.withhold_ip = False
        self.silent_ssh = False

    @property
    def url(self) -> str:
        """The account's API URL, as HCLOUD_ENDPOINT gives it (with /v1)."""
        return f"{self.base_url}/v1"

    # -- the provider's conventions -------------------------------------------------------------
    def headers(self, remaining: int = 3599) -> dict[str, str]:
        return {
            "RateLimit-Limit": "3600",
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(int(time.time()) + 1),
        }

    def error(self, status: int, code: str, message: str) -> Answer:
        return status, {"error": {"code": code, "message": message, "details": {}}}, self.headers()

    def too_many(self) -> Answer:
        body = {
            "error": {
                "code": "rate_limit_exceeded",
                "message": "limit of 3600 requests per hour reached",
                "details": {},
            }
        }
        return 429, body, self.headers(0)

    def ok(self, body: dict | None, status: int = 200) -> Answer:
        return status, body, self.headers()

    def missing(self, what: str, ref) -> Answer:
        return self.error(404, NOT_FOUND, f"{what} with ID '{ref}' not found")

    def page(self, req: Request, key: str, items: list[dict]) -> dict:
        per_page = min(int(req.arg("per_page", "25")), self.max_per_page, 50)
        page = max(1, int(req.arg("page", "1")))
        last = max(1, -(-len(items) // per_page))
        pagination = {
            "page": page,
            "per_page": per_page,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < last else None,
            "last_page": last,
            "total_entries": len(items),
        }
        chunk = items[(page - 1) * per_page : page * per_page]
        return {key: chunk, "meta": {"pagination": pagination}}

    def _filtered(self, req: Request, items) -> list[dict]:
        selector, name = req.arg("label_selector"), req.arg("name")
        return [
            i
            for i in items
            if (not selector or _selected(i.get("labels") or {}, selector))
            and (not name or i.get("name") == name)
        ]

    # -- catalog ----------------------------------------------------------------------------------
    def _location(self, name: str) -> dict:
        n = [loc[0] for loc in LOCATIONS].index(name)
        _, description, country, city, zone = LOCATIONS[n]
        return {
            "id": n + 1,
            "name": name,
            "description": description,
            "country": country,
            "city": city,
            "latitude": 50.47612,
            "longitude": 12.370071,
            "network_zone": zone,
        }

    def list_locations(self, req: Request) -> Answer:
        return self.ok(self.page(req, "locations", [self._location(loc[0]) for loc in LOCATIONS]))

    def _server_type(self, name: str) -> dict:
        n = [t[0] for t in SERVER_TYPES].index(name)
        _, cores, memory, disk, arch, price, where, deprecated = SERVER_TYPES[n]
        money = f"{price:.4f}000000000000"
        deprecation = (
            {
                "announced": "2024-06-06T00:00:00+00:00",
                "unavailable_after": "2026-09-06T00:00:00+00:00",
            }
            if deprecated
            else None
        )
        return {
            "id": n + 1,
            "name": name,
            "description": name.upper(),
            "category": "shared_vcpu",
            "cores": cores,
            "memory": memory,
            "disk": disk,
            "storage_type": "local",
            "cpu_type": "shared",
            "architecture": arch,
            "deprecated": deprecated,
            "deprecation": deprecation,
            "prices": [
                {
                    "location": loc,
                    "price_hourly": {"net": "0.0060", "gross": "0.0071"},
                    "price_monthly": {"net": money, "gross": money},
                    "included_traffic": 21990232555520,
                    "price_per_tb_traffic": {"net": "1.0000", "gross": "1.1900"},
                }
                for loc in where
            ],
            "locations": [
                {
                    "id": self._location(loc)["id"],
                    "name": loc,
                    "deprecation": deprecation,
                    "available": True,
                    "recommended": not deprecated,
                }
                for loc in where
            ],
        }

    def list_server_types(self, req: Request) -> Answer:
        types = [self._server_type(t[0]) for t in SERVER_TYPES]
        return self.ok(self.page(req, "server_types", types))

    def _images(self) -> list[dict]:
        images = []
        for name, description, flavor, version, arches in IMAGES:
            for arch in arches:
                images.append(
                    {
                        "id": 100 + len(images),
                        "type": "system",
                        "status": "available",
                        "name": name,
                        "description": description,
                        "image_size": None,
                        "disk_size": 5,
                        "created": "2026-06-13T12:00:00+00:00",
                        "created_from": None,
                        "bound_to": None,
                        "os_flavor": flavor,
                        "os_version": version,
                        "rapid_deploy": True,
                        "protection": {"delete": False},
                        "deprecated": DEPRECATED.get(name),
                        **({"deprecation": DEPRECATION[name]} if name in DEPRECATION else {}),
                        "deleted": None,
                        "labels": {},
                        "architecture": arch,
                    }
                )
        return images

    def list_images(self, req: Request) -> Answer:
        wanted = {
            key: set(req.query.get(key, []))
            for key in ("type", "status", "architecture")
            if req.query.get(key)
        }
        images = [
            i
            for i in self._filtered(req, self._images())
            if all(i[key] in values for key, values in wanted.items())
        ]
        return self.ok(self.page(req, "images", images))

    # -- SSH keys ---------------------------------------------------------------------------------
    def list_keys(self, req: Request) -> Answer:
        return self.ok(self.page(req, "ssh_keys", self._filtered(req, self.keys.values())))

    def create_key(self, req: Request) -> Answer:
        name, public = req.body.get("name"), str(req.body.get("public_key") or "")
        if not name or len(public.split()) < 2:
            return self.error(400, "invalid_input", "invalid input in fields 'name', 'public_key'")
        if any(k["name"] == name for k in self.keys.values()):
            return self.error(409, "uniqueness_error", "SSH key with the same name already exists")
        key = {
            "id": self.next_id(),
            "name": name,
            "fingerprint": fingerprint(public),
            "public_key": public,
            "labels": req.body.get("labels") or {},
            "created": self.now(),
        }
        self.keys[key["id"]] = key
        return self.ok({"ssh_key": key}, 201)

    def delete_key(self, req: Request, key_id: str) -> Answer:
        if self.keys.pop(int(key_id), None) is None:
            return self.missing("SSH key", key_id)
        return self.ok(None, 204)

    # -- firewalls --------------------------------------------------------------------------------
    def list_firewalls(self, req: Request) -> Answer:
        return self.ok(self.page(req, "firewalls", self._filtered(req, self.firewalls.values())))

    def create_firewall(self, req: Request) -> Answer:
        name = req.body.get("name")
        if not name:
            return self.error(400, "invalid_input", "invalid input in field 'name'")
        if any(f["name"] == name for f in self.firewalls.values()):
            return self.error(409, "uniqueness_error", "firewall with the same name already exists")
        rules = [
            {"destination_ips": [], "description": None, **rule}
            for rule in req.body.get("rules") or []
        ]
        firewall = {
            "id": self.next_id(),
            "name": name,
            "labels": req.body.get("labels") or {},
            "created": self.now(),
            "rules": rules,
            "applied_to": [],
        }
        self.firewalls[firewall["id"]] = firewall
        return self.ok({"firewall": firewall, "actions": []}, 201)

    def delete_firewall(self, req: Request, firewall_id: str) -> Answer:
        firewall = self.firewalls.get(int(firewall_id))
        if firewall is None:
            return self.missing("firewall", firewall_id)
        if firewall["applied_to"]:
            return self.error(422, "resource_in_use", "firewall is still in use")
        del self.firewalls[firewall["id"]]
        return self.ok(None, 204)

    # -- servers ----------------------------------------------------------------------------------
    def list_servers(self, req: Request) -> Answer:
        return self.ok(self.page(req, "servers", self._filtered(req, self.servers.values())))

    def _check_create(self, body: dict) -> Answer | None:
        types = {t[0]: t for t in SERVER_TYPES}
        kind, location = types.get(body.get("server_type")), body.get("location")
        if not body.get("name") or kind is None:
            return self.error(400, "invalid_input", "invalid input in fields 'name', 'server_type'")
        if any(s["name"] == body["name"] for s in self.servers.values()):
            return self.error(409, "uniqueness_error", "server name is already used")
        if location not in kind[6]:
            return self.error(412, "resource_unavailable", "server type unavailable in location")
        if not any(i[0] == body.get("image") and kind[4] in i[4] for i in IMAGES):
            return self.error(400, "invalid_input", "image not found for this architecture")
        refs = body.get("ssh_keys") or []
        if any(self._key(ref) is None for ref in refs):
            return self.error(400, "invalid_input", "SSH key not found")
        if any(f["firewall"] not in self.firewalls for f in body.get("firewalls") or []):
            return self.error(400, "invalid_input", "firewall not found")
        return None

    def _key(self, ref) -> dict | None:
        return next((k for k in self.keys.values() if str(ref) in (str(k["id"]), k["name"])), None)

    def create_server(self, req: Request) -> Answer:
        body = req.body
        if refused := self._check_create(body):
            return refused
        server = self._server(body)
        self.servers[server["id"]] = server
        for ref in body.get("firewalls") or []:
            applied = {"type": "server", "server": {"id": server["id"]}}
            self.firewalls[ref["firewall"]]["applied_to"].append(applied)
            server["public_net"]["firewalls"].append({"id": ref["firewall"], "status": "applied"})
        action = self._action("create_server", server)
        start = self._action("start_server", server)
        keys = [self._key(ref)["public_key"] for ref in body.get("ssh_keys") or []]
        self.later(lambda: self._boot(server["id"], keys, action, start))
        reply = {"server": server, "action": action, "next_actions": [start], "root_password": None}
        return self.ok(reply, 201)

    def _server(self, body: dict) -> dict:
        arch = next(t[4] for t in SERVER_TYPES if t[0] == body["server_type"])
        image = next(
            i for i in self._images() if i["name"] == body["image"] and i["architecture"] == arch
        )
        location = self._location(body["location"])
        return {
            "id": self.next_id(),
            "name": body["name"],
            "status": "initializing",
            "created": self.now(),
            "public_net": {"ipv4": None, "ipv6": None, "floating_ips": [], "firewalls": []},
            "private_net": [],
            "server_type": self._server_type(body["server_type"]),
            "location": location,
            "datacenter": {
                "id": location["id"],
                "name": f"{location['name']}-dc14",
                "description": location["description"],
                "location": location,
            },
            "image": image,
            "iso": None,
            "rescue_enabled": False,
            "locked": False,
            "backup_window": None,
            "outgoing_traffic": 0,
            "ingoing_traffic": 0,
            "included_traffic": 21990232555520,
            "protection": {"delete": False, "rebuild": False},
            "labels": body.get("labels") or {},
            "volumes": [],
            "load_balancers": [],
            "primary_disk_size": next(t[3] for t in SERVER_TYPES if t[0] == body["server_type"]),
            "placement_group": None,
        }

    def _boot(self, server_id: int, keys: list[str], *actions: dict) -> None:
        host = self.hosts.boot(keys)
        with self.lock:
            self.machines[server_id] = host
            if self.silent_ssh:
                host.pause()
            server = self.servers.get(server_id)
            if server is None:
                host.remove()
                return
            if not self.withhold_ip:
                server["status"] = "running"
                self._address(server, host.ip)
                for action in actions:
                    self._done(action)

    def _address(self, server: dict, ip: str) -> None:
        server["public_net"]["ipv4"] = {
            "id": server["id"] + 7,
            "ip": ip,
            "blocked": False,
            "dns_ptr": f"static.{ip}.clients.your-server.de",
        }

    def get_server(self, req: Request, server_id: str) -> Answer:
        server = self.servers.get(int(server_id))
        if server is None:
            return self.missing("server", server_id)
        return self.ok({"server": server})

    def delete_server(self, req: Request, server_id: str) -> Answer:
        server = self.servers.get(int(server_id))
        if server is None:
            return self.missing("server", server_id)
        server["status"] = "deleting"
        action = self._action("delete_server", server)
        self.later(lambda: self._delete(server, action))
        return self.ok({"action": action})

    def _delete(self, server: dict, action: dict) -> None:
        with self.lock:
            host = self.machines.pop(server["id"], None)
        if host is not None:
            host.remove()
        with self.lock:
            self.servers.pop(server["id"], None)
            for firewall in self.firewalls.values():
                firewall["applied_to"] = [
                    a for a in firewall["applied_to"] if a["server"]["id"] != server["id"]
                ]
            self._done(action)

    # -- actions ----------------------------------------------------------------------------------
    def _action(self, command: str, server: dict) -> dict:
        action = {
            "id": self.next_id(),
            "command": command,
            "status": "running",
            "progress": 0,
            "started": self.now(),
            "finished": None,
            "resources": [{"id": server["id"], "type": "server"}],
            "error": None,
        }
        self.actions[action["id"]] = action
        return action

    def _done(self, action: dict) -> None:
        action.update(status="success", progress=100, finished=self.now())

    def get_action(self, req: Request, action_id: str) -> Answer:
        action = self.actions.get(int(action_id))
        if action is None:
            return self.missing("action", action_id)
        return self.ok({"action": action})

    def server_action(self, req: Request, server_id: str, name: str) -> Answer:
        server = self.servers.get(int(server_id))
        if server is None:
            return self.missing("server", server_id)
        if name not in POWER:
            return self.error(404, NOT_FOUND, f"action {name} not found")
        command, _ = POWER[name]
        server["status"] = "starting" if POWER[name][1] == "running" else "stopping"
        action = self._action(command, server)
        self.later(lambda: self._power(server, name, action))
        return self.ok({"action": action}, 201)

    def _power(self, server: dict, name: str, action: dict) -> None:
        host = self.machines[server["id"]]
        {
            "poweron": host.start,
            "poweroff": host.kill,
            "shutdown": host.stop,
            "reboot": host.restart,
            "reset": host.restart,
        }[name]()
        with self.lock:
            server["status"] = POWER[name][1]
            if server["status"] == "running":
                self._address(server, host.ip)
            self._done(action)

    # -- the console: what a user does behind dockerdash's back ---------------------------------
    def console_power_off(self, server_id: int) -> None:
        self.machines[server_id].kill()
        with self.lock:
            self.servers[server_id]["status"] = "off"

    def console_delete(self, server_id: int) -> None:
        server = self.servers[server_id]
        self._delete(server, self._action("delete_server", server))

    def left(self) -> dict[str, list]:
        return {
            "servers": sorted(self.servers),
            "keys": sorted(k["name"] for k in self.keys.values()),
            "firewalls": sorted(f["name"] for f in self.firewalls.values()),
            "hosts": self.hosts.alive() if self.hosts else [],
        }
