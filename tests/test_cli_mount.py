"""The last docker-machine commands: `mount [-u] machine:path mountpoint` (sshfs), and
`scp -d` (rsync: only what changed) and `scp -q`, on a real host with its pinned key."""

from __future__ import annotations

import os

import pytest

from machines.lib.ssh import SSHSession

from .helpers import MANAGE, process_env, run

pytestmark = pytest.mark.engine


def _ssh(machine) -> SSHSession:
    return SSHSession(machine.ip, 22, "root", machine.ssh_private_key, machine.ssh_host_key)


def test_mount_a_machines_folder_and_unmount_it(running_machine, tmp_path):
    name, env = running_machine.name, process_env()
    point = tmp_path / "mnt"
    point.mkdir()
    run(f"{MANAGE} machine mount {name}:/etc {point}", env)
    try:
        assert (point / "hostname").read_text().strip() == name
        with _ssh(running_machine) as s:
            s.check("echo written-there > /root/mounted.txt")
    finally:
        run(f"{MANAGE} machine mount -u {name}:/etc {point}", env)
    assert not (point / "hostname").exists()
    missing = run(f"{MANAGE} machine mount {name}:/etc {tmp_path / 'nope'}", env, check=False)
    assert missing.returncode == 1
    assert f"The mount point {tmp_path / 'nope'} is not a folder: make it first" in missing.stderr


def test_scp_quiet_and_delta(running_machine, tmp_path):
    name, env = running_machine.name, process_env()
    local = tmp_path / "notes.txt"
    local.write_text("first\n")
    quiet = run(f"{MANAGE} machine scp -q {local} {name}:/root/notes.txt", env)
    assert quiet.stdout == "" and quiet.stderr == ""
    # Without rsync on the machine, -d says what to do.
    refused = run(f"{MANAGE} machine scp -d {local} {name}:/root/notes.txt", env, check=False)
    assert refused.returncode == 1
    assert f"rsync is not installed on {name}: install it there" in refused.stderr
    with _ssh(running_machine) as s:
        s.check(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q rsync >/dev/null 2>&1 || "
            "(apt-get update -q >/dev/null && apt-get install -y -q rsync >/dev/null)"
        )
    folder = tmp_path / "site"
    (folder / "css").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>v1</h1>\n")
    (folder / "css" / "a.css").write_text("body{}\n" * 1000)
    run(f"{MANAGE} machine scp -d -r -q {folder}/ {name}:/srv/site", env)
    index = folder / "index.html"
    index.write_text("<h1>v2</h1>\n")
    later = index.stat().st_mtime + 10  # the same size: rsync goes by the time
    os.utime(index, (later, later))
    os.utime(folder / "css" / "a.css", (later, later))  # same content: no data sent for it
    again = run(f"{MANAGE} machine scp -d -r {folder}/ {name}:/srv/site", env)
    assert again.returncode == 0
    with _ssh(running_machine) as s:
        assert s.check("cat /srv/site/index.html").strip() == "<h1>v2</h1>"
        assert s.check("wc -c < /srv/site/css/a.css").strip() == "7000"
    both = run(f"{MANAGE} machine scp -d {name}:/a {name}:/b", env, check=False)
    assert "scp -d (rsync) copies between here and one machine, not two" in both.stderr
