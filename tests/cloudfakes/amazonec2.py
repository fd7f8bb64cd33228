"""Amazon EC2 for the tests: moto (PyPI `moto[server]`, a real AWS emulator) in server mode,
served from a thread of the test process on 127.0.0.1, behind a thin WSGI layer.

moto answers every EC2 call the driver makes (regions, instance types, images, key pairs,
security groups, instances, volumes, status checks, tags and their filters) with EC2's own
XML and error codes. Its instances get made-up addresses, so the layer maps each instance id
to a real fleet host (hosts.py): when RunInstances succeeds, the instance shows `pending`
without an address until its host has booted, then `running` with the host's address
(public, or private for an instance without a public IP). StopInstances, StartInstances,
RebootInstances and TerminateInstances act on the host as well. Because moto's backend lives
in this process, the layer sets those states and addresses on moto's own instance objects.

What moto cannot be told, the layer does: it checks the access key ID of each signed request
(moto accepts any), answers injected failures (`answer_next`) and throttling
(`RequestLimitExceeded`, 503) before moto sees the request, and records every call. The
Debian 12 AMIs (owner 136693071363, as Debian publishes them) and a look-alike from another
owner are added to moto's images of each region.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from .hosts import Hosts

ACCESS_KEY = "AKIAIOSFODNN7DOCKERD"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYDOCKERDASHKEY"
DEBIAN_OWNER = "136693071363"
REGIONS = ("us-east-1", "eu-central-1")
# name, architecture, creation date: the newest of each architecture is the current one.
DEBIAN_AMIS = [
    ("debian-12-amd64-20250610-2136", "x86_64", "2025-06-10T21:40:00.000Z"),
    ("debian-12-amd64-20261101-2301", "x86_64", "2026-11-01T23:05:00.000Z"),
    ("debian-12-arm64-20261101-2301", "arm64", "2026-11-01T23:05:00.000Z"),
    ("debian-11-amd64-20261101-2301", "x86_64", "2026-11-01T23:05:00.000Z"),
]
# The same name from someone else's account: the owner filter must leave it out.
LOOKALIKE = ("debian-12-amd64-20261120-0000", "x86_64", "2026-11-20T00:00:00.000Z")
LOGIN_USER = "admin"  # Debian's AMIs put the key pair on this user
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise


def ami_id(region: str, name: str) -> str:
    return f"ami-{hashlib.sha256(f'{region}/{name}'.encode()).hexdigest()[:17]}"


@dataclass
class Rule:
    action: str
    status: int
    code: str
    message: str
    times: int


class EC2Fake:
    def __init__(self, hosts: Hosts | None = None) -> None:
        self.hosts = hosts
        self.lock = threading.RLock()
        self.rules: list[Rule] = []
        self.seen: list[tuple[str, int]] = []
        self.machines: dict[str, object] = {}  # instance id -> its fleet host
        self.withhold_ip = False
        self.silent_ssh = False
        self.moto = DomainDispatcherApplication(create_backend_app)
        for region in REGIONS:
            self._add_images(region)
        self.server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def client(self, region: str = "us-east-1"):
        """A boto3 client of this account: what a test sees, it sees through EC2's API."""
        import boto3

        return boto3.client(
            "ec2",
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def flags(self, access_key: str = ACCESS_KEY) -> str:
        return (
            f"-d amazonec2 --amazonec2-access-key {access_key} --amazonec2-secret-key "
            f"{SECRET_KEY} --amazonec2-endpoint {self.url}"
        )

    def backend(self, region: str):
        return ec2_backends[DEFAULT_ACCOUNT_ID][region]

    def debian_ami(self, region: str, name: str = DEBIAN_AMIS[1][0]) -> str:
        return ami_id(region, name)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.hosts is not None:
            self.hosts.close()
        for region in REGIONS:
            self.backend(region).reset()

    def _add_images(self, region: str) -> None:
        backend = self.backend(region)
        for (name, arch, created), owner in [
            *((image, DEBIAN_OWNER) for image in DEBIAN_AMIS),
            (LOOKALIKE, "679593333241"),
        ]:
            image = Ami(
                backend,
                ami_id(region, name),
                name=name,
                description=f"Debian {name.split('-')[1]} ({arch})",
                owner_id=owner,
                public=True,
                virtualization_type="hvm",
                architecture=arch,
                creation_date=datetime.datetime.fromisoformat(created),
                root_device_type="ebs",
                root_device_name="/dev/xvda",
                region_name=region,
            )
            backend.amis[image.id] = image

    # -- what a test asks of it -----------------------------------------------------------------
    def answer_next(self, action: str, status: int, code: str, message: str, times: int = 1):
        self.rules.append(Rule(action, status, code, message, times))

    def rate_limit_next(self, action: str, times: int = 1) -> None:
        self.answer_next(action, 503, "RequestLimitExceeded", "Request limit exceeded.", times)

    def count(self, action: str, status: int | None = None) -> int:
        return sum(1 for a, s in self.seen if a == action and status in (None, s))

    def instances(self, region: str = "us-east-1") -> dict[str, object]:
        """The instances not terminated, by id (moto's objects)."""
        with self.lock:
            return {
                i.id: i
                for i in self.backend(region).all_instances()
                if i.state not in ("terminated",)
            }

    def left(self, region: str = "us-east-1") -> dict[str, list]:
        """Everything the account still has in the region besides what EC2 starts with."""
        with self.lock:
            backend = self.backend(region)
            groups = [g for g in backend.describe_security_groups() if g.name != "default"]
            return {
                "instances": sorted(self.instances(region)),
                "key_pairs": sorted(backend.key_pairs),
                "security_groups": sorted(g.name for g in groups),
                "volumes": sorted(v.id for v in backend.volumes.values()),
                "hosts": self.hosts.alive() if self.hosts else [],
            }

    # -- the console: what a user does behind dockerdash's back ---------------------------------
    def console_stop(self, instance_id: str) -> None:
        self.machines[instance_id].kill()
        with self.lock:
            self._instance(instance_id)._state.name, self._instance(instance_id)._state.code = (
                "stopped",
                80,
            )

    def console_terminate(self, instance_id: str) -> None:
        with self.lock:
            self._instance(instance_id).terminate()
        self.machines.pop(instance_id).remove()

    def _instance(self, instance_id: str, region: str | None = None):
        for name in (region,) if region else REGIONS:
            found = self.backend(name).get_instance_by_id(instance_id)
            if found is not None:
                return found
        raise KeyError(instance_id)

    # -- serving --------------------------------------------------------------------------------
    def _wsgi(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length)
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        action = form.get("Action", "")
        status, body = self._answer(environ, action, form, raw)
        self.seen.append((action, status))
        start_response(
            f"{status} {'OK' if status == 200 else 'Error'}",
            [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _answer(self, environ, action: str, form: dict, raw: bytes) -> tuple[int, bytes]:
        signed = environ.get("HTTP_AUTHORIZATION", "")
        credential = re.search(r"Credential=([^/]+)/\d+/([a-z0-9-]+)/", signed)
        if not credential or credential[1] != ACCESS_KEY:
            return _error(401, "AuthFailure", "AWS was not able to validate the credentials.")
        with self.lock:
            for rule in self.rules:
                if rule.times > 0 and rule.action == action:
                    rule.times -= 1
                    return _error(rule.status, rule.code, rule.message)
            status, body = self._moto(environ, raw)
            if status == 200:
                self._after(action, form, body, credential[2])
        return status, body

    def _moto(self, environ, raw: bytes) -> tuple[int, bytes]:
        import io

        environ = {**environ, "wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))}
        answer: dict = {}

        def start(status, headers, exc_info=None):
            answer["status"] = int(status.split()[0])

        body = b"".join(self.moto(environ, start))
        return answer["status"], body

    # -- instances are fleet hosts --------------------------------------------------------------
    def _after(self, action: str, form: dict, body: bytes, region: str) -> None:
        ids = [v for k, v in form.items() if k.startswith("InstanceId.")]
        if action == "RunInstances":
            for instance_id in re.findall(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", body):
                self._launch(instance_id.decode(), region)
        for instance_id in ids:
            instance = self._instance(instance_id)
            host = self.machines.get(instance_id)
            if host is None:
                continue
            if action == "StopInstances":
                _set(instance, "stopping", 64)
                work = host.kill if form.get("Force") == "true" else host.stop
                self._later(work, lambda i=instance: _set(i, "stopped", 80))
            elif action == "StartInstances":
                _set(instance, "pending", 0)
                instance.nics[0].public_ip = None
                self._later(host.start, lambda i=instance, h=host: self._running(i, h))
            elif action == "RebootInstances":
                self._later(host.restart, lambda: None)
            elif action == "TerminateInstances":
                _set(instance, "shutting-down", 32)
                self.machines.pop(instance_id, None)
                self._later(host.remove, lambda i=instance: _set(i, "terminated", 48))

    def _launch(self, instance_id: str, region: str) -> None:
        instance = self._instance(instance_id, region)
        _set(instance, "pending", 0)
        # Whichever address the instance has is its host's: the public one when it has one.
        instance.fleet_public = instance.nics[0].public_ip is not None
        instance.nics[0].public_ip = None
        if self.withhold_ip:  # it stays pending: no host is needed behind it
            return
        key = self.backend(region).key_pairs.get(instance.key_name)
        public_key = key.material_public.decode() if key is not None else ""
        threading.Thread(target=self._boot, args=(instance, public_key), daemon=True).start()

    def _boot(self, instance, public_key: str) -> None:
        host = self.hosts.boot([public_key], user=LOGIN_USER)
        with self.lock:
            if instance.state in ("terminated", "shutting-down"):
                host.remove()
                return
            self.machines[instance.id] = host
            if self.silent_ssh:
                host.pause()
            self._running(instance, host)

    def _running(self, instance, host) -> None:
        with self.lock:
            _set(instance, "running", 16)
            nic = instance.nics[0]
            if instance.fleet_public:
                nic.public_ip = host.ip
            else:
                nic.private_ip_address = host.ip

    def _later(self, work, then) -> None:
        def run() -> None:
            work()
            with self.lock:
                then()

        threading.Thread(target=run, daemon=True).start()


def _set(instance, name: str, code: int) -> None:
    instance._state.name, instance._state.code = name, code


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error></Errors><RequestID>{time.time_ns()}</RequestID>"
        "</Response>"
    )
    return status, body.encode()
