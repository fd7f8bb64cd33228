"""Fixtures for the cloud drivers' tests: a provider's fake with real fleet hosts behind it,
and the `machine` command line run as a user runs it, on the test's database."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

import pytest

from tests.helpers import MANAGE, process_env, run

from .digitalocean import DigitalOceanFake
from .hetzner import HetznerFake
from .hosts import Hosts
from .server import FakeAPI

KINDS = ["digitalocean", "hetzner"]
# Fast polls; the failure tests shorten the waits further.
CLOUD_ENV = {
    "DOCKERDASH_CLOUD_POLL_INTERVAL": "0.2",
    "DOCKERDASH_CLOUD_BOOT_TIMEOUT": "120",
    "DOCKERDASH_CLOUD_SSH_TIMEOUT": "120",
}


@dataclass
class Cloud:
    """One provider's fake and what a test needs to say to it and about it."""

    kind: str
    fake: FakeAPI
    token: str
    token_flag: str  # the field after --<kind>-: access-token, api-token
    env: tuple[str, str]  # the variables for the token and the API URL
    vm_path: str  # the VM collection's path after the API's version
    vm_noun: str

    def flags(self, token: str | None = None) -> str:
        return (
            f"-d {self.kind} --{self.kind}-{self.token_flag} {shlex.quote(token or self.token)} "
            f"--{self.kind}-api-url {self.fake.url}"
        )

    def vms(self) -> dict[int, dict]:
        return self.fake.droplets if self.kind == "digitalocean" else self.fake.servers

    def left(self) -> dict[str, list]:
        """What the account still has, all of it expected empty after a cleanup."""
        return {k: v for k, v in self.fake.left().items() if v}


def make_cloud(kind: str, hosts: Hosts | None) -> Cloud:
    if kind == "digitalocean":
        fake = DigitalOceanFake("dop_v1_" + "5a" * 32, hosts)
        env = ("DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_API_URL")
        return Cloud(kind, fake, fake.token, "access-token", env, "/droplets", "droplet")
    fake = HetznerFake("hz" + "Q7" * 31, hosts)
    env = ("HCLOUD_TOKEN", "HCLOUD_ENDPOINT")
    return Cloud(kind, fake, fake.token, "api-token", env, "/servers", "server")


@pytest.fixture
def cloud(request, engine_url, parent, host_images):
    """A provider's fake whose VMs are fleet hosts (parametrize "cloud" with KINDS)."""
    made = make_cloud(request.param, Hosts(engine_url))
    yield made
    made.fake.close()


@pytest.fixture
def api_only(request):
    """A provider's fake without hosts: for what never boots a VM (accounts, forms)."""
    made = make_cloud(request.param, None)
    yield made
    made.fake.close()


@pytest.fixture
def machine_cli(transactional_db):
    """`manage.py machine ...` in a shell, on this test's database and data folder."""

    def cli(args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        environ = process_env(**{**CLOUD_ENV, **env})
        return run(f"{MANAGE} machine {args}", environ, check, timeout=300)

    return cli


@pytest.fixture
def ec2(engine_url, parent, host_images):
    """moto's EC2 (tests/cloudfakes/amazonec2.py) whose instances are fleet hosts."""
    from .amazonec2 import EC2Fake

    fake = EC2Fake(Hosts(engine_url))
    yield fake
    fake.close()


@pytest.fixture
def ec2_api():
    """moto's EC2 without hosts: for what never boots an instance (accounts, forms)."""
    from .amazonec2 import EC2Fake

    fake = EC2Fake(None)
    yield fake
    fake.close()


@pytest.fixture
def azure_token(settings):
    """This process's azure driver on a static token (the CLI's processes get the same from
    DOCKERDASH_EXTRA_DRIVERS): Entra ID's sign-in is never asked."""
    from machines.drivers import driver_class

    from .azure import DRIVER

    kind, path = DRIVER.split("=")
    settings.EXTRA_DRIVERS = {**settings.EXTRA_DRIVERS, kind: path}
    driver_class.cache_clear()
    yield
    driver_class.cache_clear()


@pytest.fixture
def azure(azure_token, engine_url, parent, host_images):
    """A Resource Manager fake (tests/cloudfakes/azure.py) whose VMs are fleet hosts."""
    from .azure import AzureFake

    fake = AzureFake(hosts=Hosts(engine_url))
    yield fake
    fake.close()


@pytest.fixture
def azure_api(azure_token):
    """The Resource Manager fake without hosts: for what never boots a VM."""
    from .azure import AzureFake

    fake = AzureFake()
    yield fake
    fake.close()
