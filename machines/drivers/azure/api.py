"""Azure Resource Manager through the Azure SDK for Python: credentials, clients, failures.

The SDK's own retries are off (retry_total=0): the shared retries (cloud/api.py) apply, with
their bound and their log lines, to 429 answers (waiting what Retry-After says) as to the
rest. Long-running operations are polled every DOCKERDASH_CLOUD_POLL_INTERVAL seconds unless
Azure's Retry-After asks for longer. Answers are read as the REST API's JSON (the SDK's
models are mappings of it), so what this reads is what Microsoft's API reference documents.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy
from azure.identity import ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from django.conf import settings

from machines.drivers.cloud import Failure, Size

from .forms import ENVIRONMENTS

NO_PRICE = "price not given by the API"
OS_DISK_GB = 30  # what Debian's images give the OS disk
LOCATIONS_API = "2022-12-01"  # Microsoft.Resources subscriptions: locations, the subscription


@dataclass(frozen=True)
class ArmId:
    """A resource's id: /subscriptions/S/resourceGroups/G/providers/NS/TYPE/NAME[/SUB/NAME]."""

    group: str
    type: str  # "virtualMachines", "virtualNetworks/subnets", "" for the group itself
    name: str
    parent: str = ""  # the virtual network of a subnet

    @classmethod
    def parse(cls, arm_id: str) -> ArmId:
        parts = arm_id.strip("/").split("/")
        group = parts[3] if len(parts) > 3 else ""
        if len(parts) <= 4:
            return cls(group, "", group)
        rest = parts[6:]  # after providers/NAMESPACE
        if len(rest) >= 4:
            return cls(group, f"{rest[0]}/{rest[2]}", rest[3], rest[1])
        return cls(group, rest[0], rest[1])


class BearerToken(SansIOHTTPPolicy):
    """The credential's token as a bearer header, also over plain http (which the SDK's
    policy refuses): for a Resource Manager on 127.0.0.1 (a proxy, the tests' fake); the
    account form allows http for loopback addresses only."""

    def __init__(self, credential, scope: str) -> None:
        super().__init__()
        self.credential, self.scope, self.token = credential, scope, None

    def on_request(self, request) -> None:
        if self.token is None or self.token.expires_on - 300 < time.time():
            self.token = self.credential.get_token(self.scope)
        request.http_request.headers["Authorization"] = f"Bearer {self.token.token}"


def endpoints(account: dict) -> tuple[str, str]:
    """The Resource Manager URL (the account's, else its environment's) and the sign-in one."""
    arm, login = ENVIRONMENTS[account.get("environment") or "AzurePublicCloud"]
    return (account.get("resource_manager_url") or arm).rstrip("/"), login


def credential(account: dict, secrets: dict):
    _, login = endpoints(account)
    return ClientSecretCredential(
        account.get("tenant_id", ""),
        account.get("client_id", ""),
        secrets.get("client_secret", ""),
        authority=login,
    )


def clients(account: dict, token_credential) -> dict:
    arm, _ = endpoints(account)
    scope = f"{ENVIRONMENTS[account.get('environment') or 'AzurePublicCloud'][0]}/.default"
    kwargs = {
        "base_url": arm,
        "credential_scopes": [scope],
        "retry_policy": RetryPolicy(retry_total=0),
        "polling_interval": settings.CLOUD_POLL_INTERVAL,
        "connection_timeout": 10,
        "read_timeout": 60,
    }
    if urlsplit(arm).scheme == "http":
        kwargs["authentication_policy"] = BearerToken(token_credential, scope)
    subscription = account.get("subscription_id", "")
    return {
        "resource": ResourceManagementClient(token_credential, subscription, **kwargs),
        "network": NetworkManagementClient(token_credential, subscription, **kwargs),
        "compute": ComputeManagementClient(token_credential, subscription, **kwargs),
    }


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def failure_of(error: BaseException, arm: str) -> Failure | None:
    if isinstance(error, ClientAuthenticationError) and error.response is None:
        # Entra ID refused the service principal: no answer from Resource Manager at all.
        message = str(error.message or error).split("\n")[0][:300]
        return Failure(401, "AuthenticationFailed", message)
    if isinstance(error, HttpResponseError) and error.status_code:
        odata = getattr(error, "error", None)
        code = getattr(odata, "code", None) or error.reason or "error"
        message = getattr(odata, "message", None) or str(error.message or "")
        status = error.status_code
        if status < 400:
            # An operation Azure accepted, then failed (its status answer was a 200).
            status = 400
        return Failure(
            status, str(code), message.split("\n")[0][:300], _retry_after(error.response)
        )
    if isinstance(error, AzureError):
        reason = str(error).split("\n")[0][:200]
        return Failure(None, "unreachable", f"{arm}: {reason}")
    return None


def arch_of_size(name: str) -> str:
    """Azure's Arm sizes have a 'p' after the vCPU count (Standard_D2ps_v5, Standard_B2pts_v2);
    the size list does not say the architecture."""
    return "arm" if re.fullmatch(r"[A-Za-z]+_[A-Z]+\d+p[a-z]*_v\d+", name) else "x86"


def size_of(size: dict, region: str) -> Size:
    return Size(
        slug=size["name"],
        vcpus=int(size.get("numberOfCores") or 0),
        memory_mb=int(size.get("memoryInMB") or 0),
        disk_gb=OS_DISK_GB,
        regions=frozenset({region}),
        architecture=arch_of_size(size["name"]),
        note=NO_PRICE,
    )


def arch(sku: dict) -> str:
    return "arm" if "arm64" in sku["name"] else "x86"
