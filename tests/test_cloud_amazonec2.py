"""EC2 machines end to end through the real `machine` CLI and boto3, against moto in server
mode (tests/cloudfakes/amazonec2.py): each instance is a real fleet host, so SSH as Debian's
`admin` with sudo, provisioning, TLS, `machine env` and `docker run` are the real thing."""

from __future__ import annotations

import shutil
import uuid

import pytest
from django.conf import settings

from machines.lib.ssh import public_key_of
from machines.models import Driver, Machine
from machines.operations import checks

from .cloudfakes.amazonec2 import ACCESS_KEY, DEBIAN_AMIS, SECRET_KEY
from .helpers import MANAGE, process_env, run
from .tinyimage import tiny_image_tar

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
ANYWHERE = (("0.0.0.0/0",), ("::/0",))


def _name() -> str:
    return f"ec2-{uuid.uuid4().hex[:6]}"


def _last_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _instance(ec2) -> dict:
    (reservation,) = ec2.client().describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]}]
    )["Reservations"]
    (instance,) = reservation["Instances"]
    return instance


def _tags(item: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags") or []}


def _opened(group: dict) -> list[tuple]:
    return sorted(
        (
            p["FromPort"],
            p["IpProtocol"],
            tuple(r["CidrIp"] for r in p["IpRanges"]),
            tuple(r["CidrIpv6"] for r in p.get("Ipv6Ranges", [])),
        )
        for p in group["IpPermissions"]
    )


def _status(machine_cli, name: str) -> str:
    return machine_cli(f"status {name}").stdout.strip()


@pytest.mark.engine
def test_create_use_power_and_remove_an_ec2_instance_with_the_real_cli(ec2, machine_cli, tmp_path):
    name = _name()
    ec2.rate_limit_next("RunInstances")  # EC2's throttling: retried, then fine
    created = machine_cli(
        f"create -v {ec2.flags()} --amazonec2-open-port 8080,53/udp "
        f"--amazonec2-tags team,ops,cost-centre,42 {name}"
    )
    out = created.stdout
    assert out.rstrip().endswith("Done"), out
    assert "Amazon EC2 answered rate limit while creating the instance; trying again in" in out
    assert (ec2.count("RunInstances", 503), ec2.count("RunInstances", 200)) == (1, 1)
    assert "Status checks of instance" in out and "admin becomes root with sudo -n" in out
    assert SECRET_KEY not in out + created.stderr

    machine = Machine.objects.get(name=name)
    assert machine.ssh_user == "admin"  # Debian's AMIs log in as admin
    account = Driver.objects.get(pk=machine.driver_id)
    assert account.secrets == {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
    instance = _instance(ec2)
    # The current Debian 12 AMI of the region, by Debian's owner id: not an older one, not
    # the newer look-alike from another account.
    assert instance["ImageId"] == ec2.debian_ami("us-east-1", DEBIAN_AMIS[1][0])
    assert instance["InstanceType"] == "t2.micro"  # the smallest that runs Docker
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1a"
    ours = {"dockerdash:instance": settings.INSTANCE_ID, "dockerdash:machine": name}
    assert _tags(instance) == {"Name": name, "team": "ops", "cost-centre": "42", **ours}
    (volume,) = ec2.client().describe_volumes()["Volumes"]
    assert _tags(volume)["dockerdash:machine"] == name and volume["Size"] == 16
    (key,) = ec2.client().describe_key_pairs()["KeyPairs"]
    assert key["KeyName"] == instance["KeyName"] and _tags(key) == ours
    (group,) = [
        g for g in ec2.client().describe_security_groups()["SecurityGroups"]
        if g["GroupName"] != "default"
    ]  # fmt: skip
    (interface,) = instance["NetworkInterfaces"]
    assert [g["GroupId"] for g in interface["Groups"]] == [group["GroupId"]]
    assert _opened(group) == [
        (22, "tcp", *ANYWHERE),
        (53, "udp", *ANYWHERE),
        (2376, "tcp", *ANYWHERE),
        (8080, "tcp", *ANYWHERE),
    ]
    assert machine.ip == instance["PublicIpAddress"]
    registered = ec2.backend("us-east-1").key_pairs[key["KeyName"]].material_public.decode()
    assert registered.split()[:2] == public_key_of(machine.ssh_private_key).split()[:2]

    listed = machine_cli("ls --format '{{.Name}} {{.DriverName}} {{.State}} {{.URL}}'")
    assert listed.stdout.split() == [name, "amazonec2", "Running", f"tcp://{machine.ip}:2376"]
    (tmp_path / "tiny.tar").write_bytes(tiny_image_tar())
    ran = run(
        f'eval "$({MANAGE} machine env {name})" && '
        f"{DOCKER} import - tiny:1 < {tmp_path}/tiny.tar >/dev/null && "
        f"{DOCKER} run --rm tiny:1 /bin/true && echo ran",
        process_env(),
    )
    assert ran.stdout.strip() == "ran"

    # Stopped in the console: the next health check says so. Then each power action.
    ec2.console_stop(instance["InstanceId"])
    checks.check_machine(Machine.objects.get(name=name))
    assert _status(machine_cli, name) == "Stopped"
    for action, state, status in [
        ("start", "Running", "running"),
        ("restart", "Running", "running"),
        ("kill", "Stopped", "stopped"),
    ]:
        assert machine_cli(f"{action} {name}").stdout.rstrip().endswith("Done"), action
        assert _status(machine_cli, name) == state, action
        assert _instance(ec2)["State"]["Name"] == status, action

    removed = machine_cli(f"rm -y -v {name}").stdout
    assert f"Successfully removed {name}" in removed
    assert f"Amazon EC2 lists nothing with the tags of {name} now" in removed
    assert ec2.left() == {
        "instances": [],
        "key_pairs": [],
        "security_groups": [],
        "volumes": [],
        "hosts": [],
    }
    assert Driver.objects.filter(kind="amazonec2").count() == 1  # the account stays


@pytest.mark.engine
def test_a_spot_instance_on_its_private_address_with_named_security_groups(ec2, machine_cli):
    """Spot, no public address, a group named and made (deleted on rm) beside an existing
    one that gets the missing rules and stays."""
    name = _name()
    client = ec2.client()
    vpc = client.describe_vpcs()["Vpcs"][0]["VpcId"]
    shared = client.create_security_group(GroupName="shared", Description="ops", VpcId=vpc)
    client.authorize_security_group_ingress(
        GroupId=shared["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
            }
        ],
    )
    created = machine_cli(
        f"create -v {ec2.flags()} --amazonec2-request-spot-instance --amazonec2-spot-price 0.05 "
        "--amazonec2-private-address-only --amazonec2-security-group web,shared "
        f"--amazonec2-dashboard-address 10.0.0.0/8 {name}"
    ).stdout
    assert created.rstrip().endswith("Done"), created
    assert "Created the security group web" in created
    assert (
        "Opened 2376/tcp in the existing security group shared (it is not the machine's" in created
    )
    instance = _instance(ec2)
    assert instance.get("InstanceLifecycle") == "spot"
    assert "PublicIpAddress" not in instance
    assert Machine.objects.get(name=name).ip == instance["PrivateIpAddress"]

    machine_cli(f"rm -y {name}")
    groups = client.describe_security_groups()["SecurityGroups"]
    assert sorted(g["GroupName"] for g in groups) == ["default", "shared"]
    (kept,) = [g for g in groups if g["GroupName"] == "shared"]
    assert _opened(kept) == [(22, "tcp", ("10.0.0.0/8",), ()), (2376, "tcp", ("10.0.0.0/8",), ())]
    assert ec2.left()["instances"] == [] and ec2.left()["hosts"] == []


@pytest.mark.engine
@pytest.mark.parametrize("failure", ["the instance call fails", "no address", "SSH never answers"])
def test_an_ec2_create_failing_half_way_deletes_what_it_made(ec2, failure, machine_cli):
    name = _name()
    env = {}
    if failure == "the instance call fails":
        ec2.answer_next(
            "RunInstances", 400, "InstanceLimitExceeded", "Your quota allows for 0 more instances."
        )
        why = "Amazon EC2 refused creating the instance (400 InstanceLimitExceeded: Your quota"
    elif failure == "no address":
        ec2.withhold_ip = True
        env["DOCKERDASH_CLOUD_BOOT_TIMEOUT"] = "3"
        why = "was not running with a public IPv4 address after 3 s (it is pending, address none)"
    else:
        ec2.silent_ssh = True
        env["DOCKERDASH_CLOUD_SSH_TIMEOUT"] = "3"
        why = "did not answer within 3 s"

    result = machine_cli(f"create {ec2.flags()} {name}", check=False, **env)
    assert result.returncode == 1
    error = _last_line(result)
    assert why in error
    assert "Deleted what this create had made (key pair us-east-1/key-" in error
    assert error.endswith(f"nothing of {name} is left at Amazon EC2")
    assert "Traceback" not in result.stderr
    assert ec2.left() == {
        "instances": [],
        "key_pairs": [],
        "security_groups": [],
        "volumes": [],
        "hosts": [],
    }
    assert ec2.count("RunInstances") == 1  # never repeated after a refusal
    assert f"Successfully removed {name}" in machine_cli(f"rm -y {name}").stdout


def test_wrong_keys_give_one_sentence_and_keep_nothing(ec2_api, machine_cli):
    result = machine_cli(f"create {ec2_api.flags('AKIAWRONGWRONGWRONG1')} e-1", check=False)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "Invalid options for the amazonec2 driver: Amazon EC2 refused the access keys (401 "
        "AuthFailure: AWS was not able to validate the credentials): check the keys of the "
        "account, or give valid ones"
    ]
    assert not Driver.objects.filter(kind="amazonec2").exists()
    assert not Machine.objects.exists()


def test_without_keys_the_cli_says_which_flag_gives_them(machine_cli, tmp_path):
    # Nothing in the environment or in AWS's files (the instance metadata is never asked).
    result = machine_cli(
        "create -d amazonec2 e-2",
        check=False,
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
    )
    assert _last_line(result) == (
        "No amazonec2 account yet: give --amazonec2-access-key (or add one on the Providers page)"
    )


def test_keys_from_the_aws_credentials_file_make_the_account(ec2_api, machine_cli, tmp_path):
    (tmp_path / "credentials").write_text(
        f"[ops]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    result = machine_cli(
        f"create -d amazonec2 --amazonec2-endpoint {ec2_api.url} "
        "--amazonec2-block-duration-minutes 60 e-3",
        check=False,
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
        AWS_PROFILE="ops",
    )
    # The keys were taken (the catalog was read with them); the flag AWS ended is refused.
    assert _last_line(result) == (
        "Invalid options for the amazonec2 driver: block_duration_minutes: AWS no longer "
        "offers Spot blocks (Spot Instances with a defined duration): leave out "
        "--amazonec2-block-duration-minutes."
    )
    assert ec2_api.count("DescribeInstanceTypes", 200) == 1
