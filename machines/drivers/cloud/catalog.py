"""What an account can create: its provider's regions, sizes and images, with defaults.

Fetched from the provider's API by each driver (`fetch_catalog`), cached briefly so that the
create form and `machine create` do not ask again for every field, and shared by the form
(its choices and initial values) and by the driver (defaults for what the CLI left out).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

#: What a Docker host needs at least: Docker Engine runs in less, but builds and a few
#: containers do not (docker-machine's smallest DigitalOcean default had 1 GB).
MIN_MEMORY_MB = 1024
MIN_DISK_GB = 10


@dataclass(frozen=True)
class Region:
    slug: str
    name: str
    available: bool = True

    @property
    def label(self) -> str:
        return f"{self.name} ({self.slug})" if self.name and self.name != self.slug else self.slug


@dataclass(frozen=True)
class Size:
    slug: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    #: Monthly price by region slug; the key "" is the price everywhere.
    prices: dict[str, float] = field(default_factory=dict)
    currency: str = "$"
    #: Where it is offered (None: everywhere its provider lists it).
    regions: frozenset[str] | None = None
    architecture: str = "x86"
    available: bool = True
    #: Said instead of a price when the provider's API gives none ("price not given by the API").
    note: str = ""

    def offered_in(self, region: str) -> bool:
        return self.available and (self.regions is None or region in self.regions)

    def price_in(self, region: str) -> float | None:
        return self.prices.get(region, self.prices.get(""))

    @property
    def runs_docker(self) -> bool:
        return self.memory_mb >= MIN_MEMORY_MB and self.disk_gb >= MIN_DISK_GB

    def label(self, region: str = "") -> str:
        mb = self.memory_mb
        memory = f"{mb / 1024:g} GB" if mb >= 1024 else f"{mb} MB"
        cpus = f"{self.vcpus} vCPU" + ("s" if self.vcpus != 1 else "")
        text = f"{self.slug}: {cpus}, {memory}, {self.disk_gb} GB disk"
        if self.architecture != "x86":
            text += f", {self.architecture}"
        price = self.price_in(region)
        if price is None:
            return f"{text}, {self.note}" if self.note else text
        return f"{text}, {self.currency}{price:.2f}/month"


@dataclass(frozen=True)
class Image:
    slug: str
    name: str
    architecture: str = "x86"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.slug})" if self.name and self.name != self.slug else self.slug


@dataclass
class Catalog:
    regions: list[Region]
    sizes: list[Size]
    images: list[Image]
    #: The provider's usual first choices, used when they are on offer.
    preferred_region: str = ""
    preferred_image: str = ""

    def region(self, slug: str) -> Region | None:
        return next((r for r in self.regions if r.slug == slug), None)

    def size(self, slug: str) -> Size | None:
        return next((s for s in self.sizes if s.slug == slug), None)

    def image(self, slug: str) -> Image | None:
        return next((i for i in self.images if i.slug == slug), None)

    def sizes_in(self, region: str) -> list[Size]:
        """What can be created there, cheapest first."""
        offered = [s for s in self.sizes if s.offered_in(region)]
        return sorted(offered, key=lambda s: (_price_key(s, region), s.memory_mb, s.slug))

    def images_for(self, size: Size | None) -> list[Image]:
        if size is None:
            return list(self.images)
        return [i for i in self.images if i.architecture == size.architecture]

    def default_region(self) -> str:
        usable = [r.slug for r in self.regions if r.available and self.sizes_in(r.slug)]
        if self.preferred_region in usable:
            return self.preferred_region
        return usable[0] if usable else ""

    def default_size(self, region: str) -> str:
        """The smallest size that runs Docker: the cheapest with enough memory and disk,
        x86 before others at the same price (more images run there)."""
        fit = [s for s in self.sizes_in(region) if s.runs_docker]
        fit.sort(key=lambda s: (_price_key(s, region), s.architecture != "x86", s.memory_mb))
        return fit[0].slug if fit else ""

    def default_image(self, size: str = "") -> str:
        images = self.images_for(self.size(size))
        if any(i.slug == self.preferred_image for i in images):
            return self.preferred_image
        debian = [i for i in images if i.slug.startswith("debian")]
        return (debian or images)[0].slug if images else ""


def _price_key(size: Size, region: str) -> float:
    price = size.price_in(region)
    return price if price is not None else float("inf")


def cache_key(kind: str, settings: dict, secrets: dict) -> str:
    """Per account (its settings and credentials), without a secret in the key itself."""
    account = json.dumps([kind, settings, secrets], sort_keys=True, default=str)
    return f"dockerdash:cloud-catalog:{hashlib.sha256(account.encode()).hexdigest()[:32]}"


def cached(key: str, fetch) -> Catalog:
    catalog = cache.get(key)
    if catalog is None:
        catalog = fetch()
        cache.set(key, catalog, settings.CLOUD_CATALOG_TTL)
    return catalog
