"""The driver registry: kind -> its package's driver class, by dotted path.

Adding a driver is a package under machines/drivers/ and one line here (see the README's
"Adding a driver"). Choices, labels, CLI flags and the default rows all come from this dict,
so nothing outside a driver's package names its kind. Classes are imported only when asked
for: `machine ls` never loads the Docker SDK or paramiko.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from machines.drivers.base import BaseDriver, SSHAddress
from machines.lib.errors import DriverError, NotSupported

REGISTRY: dict[str, str] = {
    "generic": "machines.drivers.generic.driver.GenericDriver",
    "container": "machines.drivers.container.driver.ContainerDriver",
    "none": "machines.drivers.none.driver.NoneDriver",
    "digitalocean": "machines.drivers.digitalocean.driver.DigitalOceanDriver",
    "hetzner": "machines.drivers.hetzner.driver.HetznerDriver",
    "kvm": "machines.drivers.kvm.driver.KVMDriver",
    "amazonec2": "machines.drivers.amazonec2.driver.AmazonEC2Driver",
    "azure": "machines.drivers.azure.driver.AzureDriver",
}


def registered() -> dict[str, str]:
    """The built-in drivers and those a deployment adds (DOCKERDASH_EXTRA_DRIVERS)."""
    return REGISTRY | settings.EXTRA_DRIVERS


@cache
def driver_class(kind: str) -> type[BaseDriver]:
    try:
        path = registered()[kind]
    except KeyError:
        raise DriverError(f"Unknown driver kind {kind!r}") from None
    return import_string(path)


def for_docker_machine(name: str) -> tuple[str, bool]:
    """Our kind for a docker-machine driver (config.json's DriverName), and whether it is
    that driver; any other machine is imported as an engine attached by its URL."""
    drivers = all_drivers()
    for kind, cls in drivers:
        if cls.docker_machine_name and cls.docker_machine_name == name:
            return kind, True
    return next(kind for kind, cls in drivers if cls.attaches_engines), False


def kind_choices() -> list[tuple[str, str]]:
    """The model's choices for Driver.kind (a callable: evaluated only when needed)."""
    return [(kind, f"{cls.label} ({cls.description})") for kind, cls in all_drivers()]


def all_drivers() -> list[tuple[str, type[BaseDriver]]]:
    return [(kind, driver_class(kind)) for kind in registered()]


__all__ = [
    "REGISTRY",
    "BaseDriver",
    "DriverError",
    "NotSupported",
    "SSHAddress",
    "all_drivers",
    "driver_class",
    "for_docker_machine",
    "kind_choices",
    "registered",
]
