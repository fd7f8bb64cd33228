"""The driver registry: kind -> the module's driver class, by dotted path.

Adding a driver touches this dict, one module, its template and its test file.
"""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

from .base import BaseDriver, DriverError, NotSupported, SSHAddress

REGISTRY: dict[str, str] = {
    "generic": "machines.drivers.generic.GenericDriver",
    "container": "machines.drivers.container.ContainerDriver",
    "none": "machines.drivers.none.NoneDriver",
}

KIND_CHOICES = [
    ("generic", "Generic (an existing host over SSH)"),
    ("container", "Container (a host as a container on a Docker engine)"),
    ("none", "None (attach an existing engine by URL)"),
]


@cache
def driver_class(kind: str) -> type[BaseDriver]:
    try:
        return import_string(REGISTRY[kind])
    except KeyError:
        raise DriverError(f"Unknown driver kind {kind!r}") from None


__all__ = [
    "KIND_CHOICES",
    "REGISTRY",
    "BaseDriver",
    "DriverError",
    "NotSupported",
    "SSHAddress",
    "driver_class",
]
