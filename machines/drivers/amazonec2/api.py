"""Amazon EC2 through boto3: clients, failures as a `Failure`, and the catalog's parts.

botocore's own retries are off (one attempt): the shared retries (cloud/api.py) apply, with
their bound and their log lines, to throttling (RequestLimitExceeded, Throttling) as to the
rest. EC2's API gives no prices, and says so in the size lists.
"""

from __future__ import annotations

import os

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from machines.drivers.amazonec2.forms import DEFAULT_ROOT_SIZE
from machines.drivers.cloud import Failure, Image, Names, Region, Size

#: Debian's own AWS account, which publishes the official Debian AMIs (wiki.debian.org/Cloud/
#: AmazonEC2Image): the default image is the newest Debian 12 AMI it owns in the region.
DEBIAN_OWNER = "136693071363"
DEBIAN_12 = ["debian-12-amd64-*", "debian-12-arm64-*"]
ARCHITECTURES = {"x86_64": "x86", "arm64": "arm"}
NO_PRICE = "price not given by the API"
# Images of each architecture offered in the create form, newest first.
IMAGES_PER_ARCH = 3


def client(settings: dict, secrets: dict, region: str):
    return boto3.session.Session().client(
        "ec2",
        region_name=region,
        endpoint_url=settings.get("endpoint") or None,
        aws_access_key_id=secrets.get("access_key"),
        aws_secret_access_key=secrets.get("secret_key"),
        aws_session_token=secrets.get("session_token") or None,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            user_agent_extra="dockerdash",
        ),
    )


def failure_of(error: BaseException, endpoint: str) -> Failure | None:
    if isinstance(error, ClientError):
        details = error.response.get("Error") or {}
        status = (error.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return Failure(
            status, str(details.get("Code") or "error"), str(details.get("Message") or "")
        )
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return Failure(401, "AuthFailure", "no complete access keys were given")
    if isinstance(error, ConnectionError | HTTPClientError):
        reason = str(error).split("\n")[0][:200]
        return Failure(None, "unreachable", f"{endpoint or 'the regional endpoint'}: {reason}")
    return None


def shared_credentials() -> dict:
    """The keys AWS's own tools would use from the environment's profile (AWS_PROFILE,
    ~/.aws/credentials and config), as docker-machine's driver took them. Never the instance
    metadata service: a role's short-lived keys do not belong in a stored account."""
    session = botocore.session.Session(profile=os.environ.get("AWS_PROFILE") or None)
    resolver = session.get_component("credential_provider")
    for name in ("iam-role", "container-role"):
        if resolver.get_provider(name) is not None:
            resolver.remove(name)
    try:
        found = resolver.load_credentials()
    except Exception:  # a broken profile is as no profile: the CLI then says what to give
        return {}
    if found is None:
        return {}
    frozen = found.get_frozen_credentials()
    keys = {"access_key": frozen.access_key, "secret_key": frozen.secret_key}
    return keys | ({"session_token": frozen.token} if frozen.token else {})


def region_of(answer: dict) -> Region:
    name = answer["RegionName"]
    return Region(name, name, answer.get("OptInStatus") != "not-opted-in")


def size_of(answer: dict, region: str) -> Size | None:
    architectures = (answer.get("ProcessorInfo") or {}).get("SupportedArchitectures") or []
    architecture = next((ARCHITECTURES[a] for a in architectures if a in ARCHITECTURES), None)
    if architecture is None or answer.get("BareMetal"):
        return None
    return Size(
        slug=answer["InstanceType"],
        vcpus=int((answer.get("VCpuInfo") or {}).get("DefaultVCpus", 0)),
        memory_mb=int((answer.get("MemoryInfo") or {}).get("SizeInMiB", 0)),
        # Its disk is the EBS root volume the machine gets (--amazonec2-root-size).
        disk_gb=DEFAULT_ROOT_SIZE,
        regions=frozenset({region}),
        architecture=architecture,
        note=NO_PRICE,
    )


def debian_images(answers: list[dict]) -> list[Image]:
    """The newest Debian 12 AMIs of each architecture, newest first."""
    newest = sorted(answers, key=lambda a: a.get("CreationDate", ""), reverse=True)
    images: list[Image] = []
    for architecture in ARCHITECTURES:
        of_arch = [a for a in newest if a.get("Architecture") == architecture]
        images += [
            Image(a["ImageId"], a.get("Name") or a["ImageId"], ARCHITECTURES[architecture])
            for a in of_arch[:IMAGES_PER_ARCH]
        ]
    return images


# What dockerdash tags its resources with, and finds them by again.
def tags_of(names: Names) -> dict[str, str]:
    return {"dockerdash:instance": names.instance, "dockerdash:machine": names.machine}


def tag_filters(names: Names) -> list[dict]:
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags_of(names).items()]


def tag_list(tags: dict[str, str]) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]
