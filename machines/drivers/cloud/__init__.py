"""What every cloud driver shares: provider accounts, the catalog of regions, sizes and
images, API failures and retries, and the lifecycle (key, firewall, VM, tags, cleanup).

A provider's package (machines/drivers/digitalocean, .../hetzner) subclasses `CloudDriver`
and implements its primitives with the provider's official SDK.
"""

from __future__ import annotations

from .api import CloudError, Failure, ProviderFailure
from .catalog import Catalog, Image, Region, Size
from .forms import CloudOptionsForm, api_url_field, dashboard_address_field, token_field
from .lifecycle import CloudDriver
from .resources import VM, Names, Resource

__all__ = [
    "VM",
    "Catalog",
    "CloudDriver",
    "CloudError",
    "CloudOptionsForm",
    "Failure",
    "Image",
    "Names",
    "ProviderFailure",
    "Region",
    "Resource",
    "Size",
    "api_url_field",
    "dashboard_address_field",
    "token_field",
]
