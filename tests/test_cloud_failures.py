"""A cloud create that fails half-way deletes what it made and says why, in one sentence; a
token the provider refuses is said so, and nothing is kept. Through the real CLI, against the
providers' fakes (their VMs are real fleet hosts, removed with the VM)."""

from __future__ import annotations

import uuid

import pytest

from machines.drivers.cloud import Names
from machines.drivers.cloud.resources import Made
from machines.lib.ssh import generate_key, public_key_of
from machines.models import Driver, Machine, Operation

from .cloudfakes.fixtures import KINDS
from .fleet import run_operation

PROVIDER = {"digitalocean": "DigitalOcean", "hetzner": "Hetzner Cloud"}


def _last_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.engine
@pytest.mark.parametrize("failure", ["the VM call fails", "no address", "SSH never answers"])
@pytest.mark.parametrize("cloud", KINDS, indirect=True)
def test_a_create_failing_half_way_deletes_what_it_made_and_says_why(cloud, failure, machine_cli):
    name = f"f-{uuid.uuid4().hex[:6]}"
    env = {}
    if failure == "the VM call fails":
        cloud.fake.answer_next("POST", cloud.vm_path, 500, "server_error", "Unexpected error")
        why = f"failed while creating the {cloud.vm_noun} (500 server_error: Unexpected error)"
    elif failure == "no address":
        cloud.fake.withhold_ip = True
        env["DOCKERDASH_CLOUD_BOOT_TIMEOUT"] = "3"
        why = "was not running with a public IPv4 address after 3 s (it is "
    else:
        cloud.fake.silent_ssh = True
        env["DOCKERDASH_CLOUD_SSH_TIMEOUT"] = "3"
        why = "did not answer within 3 s"

    result = machine_cli(f"create {cloud.flags()} {name}", check=False, **env)
    assert result.returncode == 1
    error = _last_line(result)
    assert why in error
    assert "Deleted what this create had made (SSH key " in error
    assert error.endswith(f"nothing of {name} is left at {PROVIDER[cloud.kind]}")
    assert "Traceback" not in result.stderr
    assert cloud.left() == {}  # no VM (nor the host behind it), key, firewall or tag
    # A create is not repeated after an outage (it may have happened); the others had one try.
    assert cloud.fake.count("POST", cloud.vm_path) == 1

    # The machine stays, failed, to be looked at; rm finds nothing more to delete.
    assert Machine.objects.get(name=name).state == Machine.State.ERROR
    assert f"Successfully removed {name}" in machine_cli(f"rm -y {name}").stdout


@pytest.mark.parametrize("api_only", KINDS, indirect=True)
def test_a_wrong_token_gives_one_clear_sentence_and_keeps_nothing(api_only, machine_cli):
    token_env, url_env = api_only.env
    # From the environment, as docker-machine's drivers took them.
    result = machine_cli(
        f"create -d {api_only.kind} w-1",
        check=False,
        **{token_env: "not-the-token", url_env: api_only.fake.url},
    )
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"Invalid options for the {api_only.kind} driver: {PROVIDER[api_only.kind]} refused "
        "the API token (401 unauthorized: Unable to authenticate you): check the token of the "
        "account, or give a valid one"
    ]
    assert not Driver.objects.filter(kind=api_only.kind).exists()
    assert not Machine.objects.exists()
    assert {s.status for s in api_only.fake.seen} == {401}


@pytest.mark.parametrize("api_only", KINDS, indirect=True)
def test_without_a_token_the_cli_says_which_flag_gives_one(api_only, machine_cli):
    result = machine_cli(f"create -d {api_only.kind} w-2", check=False)
    assert _last_line(result) == (
        f"No {api_only.kind} account yet: give --{api_only.kind}-{api_only.token_flag} "
        "(or add one on the Providers page)"
    )


@pytest.mark.engine
@pytest.mark.parametrize("cloud", ["digitalocean"], indirect=True)
def test_a_create_run_again_after_a_crash_first_deletes_what_the_crashed_one_made(
    cloud, transactional_db, settings
):
    settings.CLOUD_POLL_INTERVAL = 0.2
    account = Driver.objects.create(
        name="do-1",
        kind="digitalocean",
        settings={"api_url": cloud.fake.url},
        secrets={"access_token": cloud.token},
    )
    private, _ = generate_key()
    machine = Machine(name="crashed-1", driver=account, ssh_private_key=private)
    account.get_driver().apply_options(
        machine, {"region": "fra1", "size": "s-1vcpu-1gb", "image": "debian-12-x64"}
    )
    machine.save()
    # The crashed run had registered its key (recorded on the machine) and died there.
    crashed = account.get_driver()
    names = Names.of(machine)
    Made(machine).add(crashed.add_key(machine, names, public_key_of(private)))
    (old_key,) = cloud.fake.keys

    op = run_operation(machine, Operation.Kind.CREATE)
    assert op.status == Operation.Status.SUCCEEDED, op.error
    lines = list(op.log_lines.values_list("text", flat=True))
    assert f"Deleting what an interrupted create made: SSH key {old_key}" in lines
    assert old_key not in cloud.fake.keys and len(cloud.fake.keys) == 1
    machine.get_driver().remove(Machine.objects.get(pk=machine.pk))
    assert cloud.left() == {}
