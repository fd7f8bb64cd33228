"""The Resource Manager fake's catalog (tests/cloudfakes/azure.py): the subscription, its
locations (a logical one among them), VM sizes per location and Debian's image SKUs."""

from __future__ import annotations

from .server import Answer, Request

SUBSCRIPTION = "5c5f3e63-2b1e-4c2b-9d4e-3f1a7c0d9e21"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
LOCATIONS = [
    ("westus", "West US", "Physical"),
    ("eastus", "East US", "Physical"),
    ("westeurope", "West Europe", "Physical"),
    ("northeurope", "North Europe", "Physical"),
    ("europe", "Europe", "Logical"),
]
# name, cores, memory MB, locations (None: everywhere)
SIZES = [
    ("Standard_B1ls", 1, 512, None),
    ("Standard_B1s", 1, 1024, None),
    ("Standard_B1ms", 1, 2048, None),
    ("Standard_B2s", 2, 4096, None),
    ("Standard_D2s_v5", 2, 8192, None),
    ("Standard_D2ps_v5", 2, 8192, None),
    ("Standard_NV6ads_A10_v5", 6, 56320, ["westeurope"]),
]
IMAGES = {("Debian", "debian-12"): ["12", "12-arm64", "12-gen2"], ("Debian", "debian-11"): ["11"]}


class CatalogRoutes:
    """Routes of AzureFake: listing what a subscription can create."""

    def list_locations(self, req: Request, sub: str) -> Answer:
        value = [
            {
                "id": f"/subscriptions/{SUBSCRIPTION}/locations/{name}",
                "name": name,
                "displayName": display,
                "regionalDisplayName": display,
                "metadata": {"regionType": kind, "regionCategory": "Recommended"},
            }
            for name, display, kind in LOCATIONS
        ]
        return self.ok({"value": value})

    def get_subscription(self, req: Request, sub: str) -> Answer:
        return self.ok(
            {
                "id": f"/subscriptions/{SUBSCRIPTION}",
                "subscriptionId": SUBSCRIPTION,
                "tenantId": TENANT,
                "displayName": "Ops (Pay-As-You-Go)",
                "state": "Enabled",
            }
        )

    def sizes(self, req: Request, sub: str, location: str) -> Answer:
        value = [
            {
                "name": name,
                "numberOfCores": cores,
                "memoryInMB": memory,
                "osDiskSizeInMB": 1047552,
                "resourceDiskSizeInMB": 4096,
                "maxDataDiskCount": 4,
            }
            for name, cores, memory, where in SIZES
            if where is None or location in where
        ]
        return self.ok({"value": value})

    def skus(self, req: Request, sub: str, location: str, publisher: str, offer: str) -> Answer:
        names = IMAGES.get((publisher, offer))
        if names is None:
            return self.error(404, "NotFound", "Artifact: VMImage was not found.")
        value = [
            {
                "name": sku,
                "location": location,
                "id": f"/Subscriptions/{SUBSCRIPTION}/Providers/Microsoft.Compute/Locations/"
                f"{location}/Publishers/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}",
            }
            for sku in names
        ]
        return self.ok(value)  # a JSON array, as this operation answers
