"""amazonec2: an EC2 instance per machine (docker-machine's `-d amazonec2`), on boto3.

Each machine gets its own key pair and security group (SSH and Docker only, plus the ports
asked for), then an instance whose root volume and network interface carry the same tags as
itself (this dashboard's instance, the machine); create waits for `running` and for both
status checks. rm terminates it, deletes the group and key, and lists by tag that none is
left. Ids are kept as REGION/ID, so that every call finds its region.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from django.conf import settings

from machines.drivers.amazonec2 import api, network
from machines.drivers.amazonec2.api import tag_filters, tag_list, tags_of
from machines.drivers.amazonec2.forms import (
    DEFAULT_REGION,
    PUBLIC_API,
    AmazonEC2OptionsForm,
    AmazonEC2SettingsForm,
)
from machines.drivers.cloud import VM, Catalog, CloudDriver, CloudError, Names, Resource
from machines.drivers.cloud.lifecycle import PROGRESS_EVERY
from machines.lib.ssh import public_key_of

if TYPE_CHECKING:
    from machines.models import Machine

STATES = {
    "pending": "starting",
    "running": "running",
    "stopping": "stopping",
    "stopped": "stopped",
    "shutting-down": "stopping",
}
LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]


def split_id(resource_id: str) -> tuple[str, str]:
    region, _, ident = resource_id.partition("/")
    return region, ident


class AmazonEC2Driver(CloudDriver):
    kind = "amazonec2"
    label = "Amazon EC2"
    description = "an instance at Amazon EC2"
    provider = "Amazon EC2"
    vm_noun = "instance"
    public_api_url = ""
    api_url_setting = "endpoint"
    settings_form = AmazonEC2SettingsForm
    options_form = AmazonEC2OptionsForm
    secret_fields = ("access_key", "secret_key", "session_token")
    token_field = "secret_key"  # noqa: S105 (a field name)
    credential_noun = "access keys"
    access_hint = "the keys' IAM policy lacks an EC2 action the README lists"
    regional = True
    default_region = DEFAULT_REGION
    delete_order = ("vm", "volume", "firewall", "key")
    cli_env = {
        "access_key": "AWS_ACCESS_KEY_ID",
        "secret_key": "AWS_SECRET_ACCESS_KEY",
        "session_token": "AWS_SESSION_TOKEN",
        "region": "AWS_DEFAULT_REGION",
        "ami": "AWS_AMI",
        "instance_type": "AWS_INSTANCE_TYPE",
        "vpc_id": "AWS_VPC_ID",
        "subnet_id": "AWS_SUBNET_ID",
        "keypair_name": "AWS_KEYPAIR_NAME",
    }
    cli_flag_names = {"ssh_key": "--amazonec2-ssh-keypath"}
    cli_file_fields = frozenset({"ssh_key", "userdata"})

    @classmethod
    def complete_cli_settings(cls, given: dict) -> dict:
        if given.get("access_key") or given.get("secret_key"):
            return given
        return given | api.shared_credentials()

    def failure_of(self, error: BaseException):
        return api.failure_of(error, self.api_url or PUBLIC_API)

    def _ec2(self, region: str):
        clients = self.__dict__.setdefault("_clients", {})
        if region not in clients:
            clients[region] = api.client(self.settings, self.secrets, region)
        return clients[region]

    def api_call(
        self, region: str, what: str, method: str, idempotent=True, missing_ok=False, **kw
    ):
        fn = getattr(self._ec2(region), method)
        return self.call(what, fn, idempotent=idempotent, missing_ok=missing_ok, **kw)

    def _all(self, region: str, what: str, method: str, key: str, **kw) -> list[dict]:
        """Every item of a listing, page after page (a retry starts the listing again)."""

        def listing() -> list[dict]:
            pages = self._ec2(region).get_paginator(method).paginate(**kw)
            return [item for page in pages for item in page.get(key, [])]

        return self.call(what, listing)

    # -- what the account sees -------------------------------------------------------------
    def fetch_catalog(self, region: str = "") -> Catalog:
        region = region or DEFAULT_REGION
        regions = self.api_call(region, "listing regions", "describe_regions")["Regions"]
        types = self._all(
            region,
            f"listing the instance types of {region}",
            "describe_instance_types",
            "InstanceTypes",
            Filters=[{"Name": "current-generation", "Values": ["true"]}],
        )
        images = self.api_call(
            region,
            f"looking up Debian 12 AMIs in {region}",
            "describe_images",
            Owners=[api.DEBIAN_OWNER],
            Filters=[
                {"Name": "name", "Values": api.DEBIAN_12},
                {"Name": "state", "Values": ["available"]},
            ],
        )["Images"]
        debian = api.debian_images(images)
        return Catalog(
            regions=sorted((api.region_of(r) for r in regions), key=lambda r: r.slug),
            sizes=[s for s in (api.size_of(t, region) for t in types) if s is not None],
            images=debian,
            preferred_region=region,
            preferred_image=debian[0].slug if debian else "",
        )

    def describe_account(self) -> str:
        region = DEFAULT_REGION
        catalog = self.catalog(region)
        live = self._all(
            region,
            "listing instances",
            "describe_instances",
            "Reservations",
            Filters=[{"Name": "instance-state-name", "Values": LIVE}],
        )
        count = sum(len(r.get("Instances") or []) for r in live)
        image = catalog.preferred_image or "none found"
        return (
            f"Amazon EC2 accepts the access keys: {len(catalog.regions)} regions; {count} "
            f"instance(s) in {region}, where the current Debian 12 AMI is {image}"
        )

    # -- making things -------------------------------------------------------------------------
    def build(self, machine: Machine, names: Names, made) -> None:
        opts = machine.driver_options
        retries = opts.get("retries", 5)
        self.api_retries = 0 if retries is None or retries < 0 else retries
        region = opts["region"]
        image = network.image(self, region, opts["ami"])
        key = self._key_pair(machine, names, made)
        groups = network.security_groups(self, machine, names, made)
        vm = made.add(self._run(machine, names, key, groups, image))
        self.log(
            f"Created instance {vm.name} ({vm.id}) with tags naming this dashboard "
            f"({names.instance}) and the machine, on its root volume and interface too"
        )

    def _key_pair(self, machine: Machine, names: Names, made) -> str:
        region = machine.driver_options["region"]
        if existing := machine.driver_options.get("keypair_name"):
            self.api_call(
                region, f"looking up the key pair {existing}", "describe_key_pairs",
                KeyNames=[existing],
            )  # fmt: skip
            self.log(f"Using the key pair {existing} already in {region}")
            return existing
        key = made.add(self.add_key(machine, names, public_key_of(machine.ssh_private_key)))
        self.log(f"Imported the machine's own SSH key as the key pair {key.name} ({key.id})")
        return key.name

    def add_key(self, machine: Machine, names: Names, public_key: str) -> Resource:
        region = machine.driver_options["region"]
        made = self.api_call(
            region,
            "importing the key pair",
            "import_key_pair",
            idempotent=False,
            KeyName=names.resource,
            PublicKeyMaterial=public_key.encode(),
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": tag_list(tags_of(names))}],
        )
        return Resource("key", f"{region}/{made['KeyPairId']}", made["KeyName"])

    def _run(self, machine: Machine, names: Names, key: str, groups: list[str], image) -> Resource:
        opts = machine.driver_options
        region = opts["region"]
        subnet = network.subnet(self, region, opts)
        tags = tag_list({"Name": machine.name, **opts.get("tags", {}), **tags_of(names)})
        params = {
            "ImageId": image["ImageId"],
            "InstanceType": opts["instance_type"],
            "MinCount": 1,
            "MaxCount": 1,
            "KeyName": key,
            # The same token if the call is sent again: EC2 then makes no second instance.
            "ClientToken": f"dockerdash-{uuid.uuid4().hex}",
            "NetworkInterfaces": [
                {
                    "DeviceIndex": 0,
                    "SubnetId": subnet,
                    "Groups": groups,
                    "AssociatePublicIpAddress": not opts.get("private_address_only"),
                    "DeleteOnTermination": True,
                }
            ],
            "BlockDeviceMappings": [
                {
                    "DeviceName": opts.get("device_name") or image.get("RootDeviceName"),
                    "Ebs": {
                        "VolumeSize": opts.get("root_size", 16),
                        "VolumeType": opts.get("volume_type", "gp3"),
                        "DeleteOnTermination": True,
                    },
                }
            ],
            "TagSpecifications": [
                {"ResourceType": kind, "Tags": tags}
                for kind in ("instance", "volume", "network-interface")
            ],
            "Monitoring": {"Enabled": bool(opts.get("monitoring"))},
            "EbsOptimized": bool(opts.get("use_ebs_optimized_instance")),
        }
        params |= _extras(opts)
        answer = self.api_call(region, "creating the instance", "run_instances", False, **params)
        instance = answer["Instances"][0]
        return Resource("vm", f"{region}/{instance['InstanceId']}", machine.name)

    # -- the instance --------------------------------------------------------------------------
    def _vm(self, machine: Machine, vm_id: str | None = None) -> VM:
        opts = machine.driver_options
        self._private = bool(opts.get("use_private_address") or opts.get("private_address_only"))
        return super()._vm(machine, vm_id)

    def find_vm(self, vm_id: str) -> VM | None:
        region, ident = split_id(vm_id)
        found = self.api_call(
            region, f"reading instance {ident}", "describe_instances", missing_ok=True,
            InstanceIds=[ident],
        )  # fmt: skip
        instances = [i for r in (found or {}).get("Reservations", []) for i in r["Instances"]]
        if not instances or instances[0]["State"]["Name"] == "terminated":
            return None
        instance = instances[0]
        status = instance["State"]["Name"]
        private = getattr(self, "_private", False)
        address = instance.get("PrivateIpAddress" if private else "PublicIpAddress") or ""
        return VM(vm_id, status, STATES.get(status, "error"), address)

    def _wait_running(self, machine: Machine, vm_id: str) -> VM:
        vm = super()._wait_running(machine, vm_id)
        self._wait_status_checks(vm_id)
        return vm

    def _wait_status_checks(self, vm_id: str) -> None:
        region, ident = split_id(vm_id)
        self.log(f"Waiting for the status checks of instance {ident} to pass")
        started = last_said = time.monotonic()
        while True:
            statuses = self.api_call(
                region, f"reading the status checks of {ident}", "describe_instance_status",
                InstanceIds=[ident], IncludeAllInstances=True,
            )["InstanceStatuses"]  # fmt: skip
            checks = statuses[0] if statuses else {}
            system = (checks.get("SystemStatus") or {}).get("Status", "not yet")
            own = (checks.get("InstanceStatus") or {}).get("Status", "not yet")
            if system == own == "ok":
                self.log(f"Status checks of instance {ident} passed")
                return
            if "impaired" in (system, own):
                raise CloudError(
                    f"EC2's status checks of instance {ident} failed (system {system}, "
                    f"instance {own})"
                )
            waited = time.monotonic() - started
            if waited > settings.CLOUD_BOOT_TIMEOUT:
                raise CloudError(
                    f"EC2's status checks of instance {ident} had not passed after "
                    f"{settings.CLOUD_BOOT_TIMEOUT} s (system {system}, instance {own})"
                )
            if time.monotonic() - last_said >= PROGRESS_EVERY:
                self.log(f"Still waiting ({waited:.0f} s): status checks {system}, {own}")
                last_said = time.monotonic()
            time.sleep(settings.CLOUD_POLL_INTERVAL)

    def power(self, vm_id: str, action: str) -> None:
        region, ident = split_id(vm_id)
        method, extra = {
            "on": ("start_instances", {}),
            "off": ("stop_instances", {"Force": True}),
            "shutdown": ("stop_instances", {}),
            "reboot": ("reboot_instances", {}),
        }[action]
        self.api_call(
            region, f"asking to {action} instance {ident}", method, InstanceIds=[ident], **extra
        )

    # -- removing ------------------------------------------------------------------------------
    def _noun(self, kind: str) -> str:
        return {"key": "key pair", "firewall": "security group"}.get(kind) or super()._noun(kind)

    def delete(self, resource: Resource) -> None:
        region, ident = split_id(resource.id)
        what = f"deleting {self._noun(resource.kind)} {ident}"
        if resource.kind == "vm":
            self.api_call(region, what, "terminate_instances", missing_ok=True, InstanceIds=[ident])
            deadline = time.monotonic() + settings.CLOUD_BOOT_TIMEOUT
            while self.find_vm(resource.id) is not None:
                if time.monotonic() > deadline:
                    raise CloudError(f"Instance {ident} was not terminated after a while")
                time.sleep(settings.CLOUD_POLL_INTERVAL)
        elif resource.kind == "firewall":
            self.api_call(region, what, "delete_security_group", missing_ok=True, GroupId=ident)
        elif resource.kind == "key":
            self.api_call(region, what, "delete_key_pair", missing_ok=True, KeyName=resource.name)
        elif resource.kind == "volume":
            self.api_call(region, what, "delete_volume", missing_ok=True, VolumeId=ident)

    def leftovers(self, machine: Machine, names: Names) -> list[Resource]:
        region, filters = machine.driver_options.get("region", DEFAULT_REGION), tag_filters(names)
        reservations = self._all(
            region, "listing instances by tag", "describe_instances", "Reservations",
            Filters=[*filters, {"Name": "instance-state-name", "Values": LIVE}],
        )  # fmt: skip
        found = [
            Resource("vm", f"{region}/{i['InstanceId']}", machine.name)
            for r in reservations
            for i in r["Instances"]
        ]
        groups = self.api_call(
            region, "listing security groups by tag", "describe_security_groups", Filters=filters
        )["SecurityGroups"]
        found += [Resource("firewall", f"{region}/{g['GroupId']}", g["GroupName"]) for g in groups]
        keys = self.api_call(
            region, "listing key pairs by tag", "describe_key_pairs", Filters=filters
        )
        found += [
            Resource("key", f"{region}/{k.get('KeyPairId', k['KeyName'])}", k["KeyName"])
            for k in keys["KeyPairs"]
        ]
        # Attached volumes go with their instance (DeleteOnTermination); these are orphans.
        orphans = [*filters, {"Name": "status", "Values": ["available", "error"]}]
        volumes = self._all(
            region, "listing volumes by tag", "describe_volumes", "Volumes", Filters=orphans
        )
        found += [Resource("volume", f"{region}/{v['VolumeId']}", v["VolumeId"]) for v in volumes]
        return found


def _extras(opts: dict) -> dict:
    """RunInstances' parameters for the flags that add something."""
    extra: dict = {}
    if opts.get("userdata"):
        extra["UserData"] = opts["userdata"]
    if profile := opts.get("iam_instance_profile"):
        extra["IamInstanceProfile"] = {"Arn" if profile.startswith("arn:") else "Name": profile}
    if opts.get("request_spot_instance"):
        spot = {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}
        if opts.get("spot_price"):
            spot["MaxPrice"] = opts["spot_price"]
        extra["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
    return extra
