"""Where an EC2 instance goes and what it lets in: its AMI, VPC, subnet and security groups.

As docker-machine's driver: the region's default VPC and the zone's default subnet unless
given; security groups by name, made when missing (and then deleted with the machine),
with the rules the machine needs added to existing ones unless they are read-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from machines.drivers.amazonec2.api import tag_list, tags_of
from machines.drivers.cloud import CloudError, Names, Resource

if TYPE_CHECKING:
    from machines.drivers.amazonec2.driver import AmazonEC2Driver
    from machines.models import Machine


def image(driver: AmazonEC2Driver, region: str, ami: str) -> dict:
    found = driver.api_call(
        region, f"looking up the AMI {ami}", "describe_images", missing_ok=True, ImageIds=[ami]
    )
    images = (found or {}).get("Images") or []
    if not images:
        raise CloudError(f"There is no AMI {ami} in {region} that these keys may use")
    return images[0]


def vpc(driver: AmazonEC2Driver, region: str, opts: dict) -> str:
    if opts.get("vpc_id"):
        return opts["vpc_id"]
    found = driver.api_call(
        region,
        "looking up the default VPC",
        "describe_vpcs",
        Filters=[{"Name": "is-default", "Values": ["true"]}],
    )["Vpcs"]
    if not found:
        raise CloudError(f"{region} has no default VPC: give one with --amazonec2-vpc-id")
    return found[0]["VpcId"]


def subnet(driver: AmazonEC2Driver, region: str, opts: dict) -> str:
    if opts.get("subnet_id"):
        return opts["subnet_id"]
    zone, vpc_id = f"{region}{opts.get('zone', 'a')}", vpc(driver, region, opts)
    found = driver.api_call(
        region,
        f"looking up the subnet of {zone}",
        "describe_subnets",
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "availability-zone", "Values": [zone]},
        ],
    )["Subnets"]
    default = [s for s in found if s.get("DefaultForAz")] or found
    if not default:
        raise CloudError(
            f"The VPC {vpc_id} has no subnet in {zone}: give --amazonec2-subnet-id or another "
            "--amazonec2-zone"
        )
    return default[0]["SubnetId"]


def permissions(machine: Machine, sources: list[str]) -> list[dict]:
    """Inbound rules: SSH, Docker and the ports asked for, from the given sources only."""
    v4 = [{"CidrIp": s} for s in sources if ":" not in s]
    v6 = [{"CidrIpv6": s} for s in sources if ":" in s]
    ports = {(machine.ssh_port, "tcp"), (machine.engine_port, "tcp")}
    for item in machine.driver_options.get("open_port", []):
        port, proto = item.split("/")
        ports.add((int(port), proto))
    return [
        {"IpProtocol": proto, "FromPort": port, "ToPort": port, "IpRanges": v4, "Ipv6Ranges": v6}
        for port, proto in sorted(ports)
    ]


def security_groups(driver: AmazonEC2Driver, machine: Machine, names: Names, made) -> list[str]:
    """The ids of the instance's groups: its own, or those named, made when missing."""
    opts, region = machine.driver_options, machine.driver_options["region"]
    rules = permissions(machine, driver._firewall_sources(machine))
    vpc_id = vpc(driver, region, opts)
    if not opts.get("security_group"):
        group = made.add(create_group(driver, machine, names, names.resource, vpc_id, rules))
        driver.log(f"Security group {group.name} ({group.id}) allows only those ports")
        return [group.id.partition("/")[2]]
    listed = driver.api_call(
        region,
        "looking up the security groups",
        "describe_security_groups",
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": opts["security_group"]},
        ],
    )["SecurityGroups"]
    existing = {g["GroupName"]: g for g in listed}
    ids = []
    for name in opts["security_group"]:
        if name in existing:
            ids.append(existing[name]["GroupId"])
            _complete(driver, region, existing[name], rules, opts)
            continue
        if opts.get("security_group_readonly"):
            raise CloudError(
                f"There is no security group {name} in {vpc_id}, and read-only groups are not "
                "made (--amazonec2-security-group-readonly)"
            )
        group = made.add(create_group(driver, machine, names, name, vpc_id, rules))
        driver.log(f"Created the security group {name} ({group.id}): it goes with the machine")
        ids.append(group.id.partition("/")[2])
    return ids


def create_group(
    driver: AmazonEC2Driver, machine: Machine, names: Names, name: str, vpc_id: str, rules
) -> Resource:
    region = machine.driver_options["region"]
    made = driver.api_call(
        region,
        "creating the security group",
        "create_security_group",
        idempotent=False,
        GroupName=name,
        Description=f"dockerdash machine {machine.name}: SSH and Docker (TLS)",
        VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags_of(names))}],
    )
    group = Resource("firewall", f"{region}/{made['GroupId']}", name)
    driver.api_call(
        region,
        "opening the security group's ports",
        "authorize_security_group_ingress",
        GroupId=made["GroupId"],
        IpPermissions=rules,
    )
    return group


def _complete(driver: AmazonEC2Driver, region: str, group: dict, rules, opts: dict) -> None:
    """An existing group gets the rules it lacks (not when read-only); they stay after rm."""
    if opts.get("security_group_readonly"):
        driver.log(f"Using the security group {group['GroupName']} as it is (read-only)")
        return
    have = {(p.get("IpProtocol"), p.get("FromPort")) for p in group.get("IpPermissions", [])}
    missing = [r for r in rules if (r["IpProtocol"], r["FromPort"]) not in have]
    if not missing:
        driver.log(f"The security group {group['GroupName']} already opens those ports")
        return
    driver.api_call(
        region,
        f"adding rules to the security group {group['GroupName']}",
        "authorize_security_group_ingress",
        GroupId=group["GroupId"],
        IpPermissions=missing,
    )
    ports = ", ".join(f"{r['FromPort']}/{r['IpProtocol']}" for r in missing)
    driver.log(
        f"Opened {ports} in the existing security group {group['GroupName']} (it is not the "
        "machine's: rm leaves it and its rules)"
    )
