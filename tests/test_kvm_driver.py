"""kvm: real VMs on libvirt (software emulation here: this CI has no usable KVM), managed
through the real `machine` CLI, checked against what libvirt itself says.

One VM on this machine's hypervisor carries the lifecycle tests in file order (each boot is
most of a minute under emulation); a second, on the same hypervisor reached as a remote one
over SSH and booted from a user's image, is created in the background meanwhile.
"""

from __future__ import annotations

import functools
import http.server
import os
import shlex
import shutil
import subprocess
import sys
import threading
import uuid

import pytest
from django.urls import reverse

from machines.drivers.kvm.driver import IMAGE_PREFIX
from machines.lib.rootfs import HostImageError
from machines.lib.vmimage import (
    VM_IMAGE,
    ensure_vm_images,
    fetch_image,
    file_digest,
    image_format,
)
from machines.models import Driver
from tests import helpers
from tests.fleet import make_machine
from tests.helpers import MANAGE, user_env
from tests.kvmfleet import (
    check_hypervisor,
    delete_volume,
    domain_state,
    domain_xml,
    libvirt_module,
    pool_volumes,
    remove_vm,
    root_ssh,
    ssh_agent,
)
from tests.tinyimage import tiny_image_tar

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
RUN = f"{uuid.uuid4().hex[:6]}"
LOCAL = f"kvmt-{RUN}"
REMOTE = f"kvmt-r-{RUN}"


class CLI:
    """`manage.py` in a shell, as a user runs it, with a dashboard (data dir) of its own."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return helpers.run(" ".join([MANAGE, *map(shlex.quote, args)]), self.env, check, 900)

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        return helpers.run(script, self.env, check, 300)

    def background(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=helpers.ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> CLI:
    check_hypervisor()
    ensure_vm_images((VM_IMAGE,))  # built by `make test`; built here (as root) when missing
    data = tmp_path_factory.mktemp("kvm-data")
    cli = CLI(user_env(data))
    cli("migrate", "--noinput")
    return cli


@pytest.fixture(scope="module")
def remote(cli, tmp_path_factory):
    """A VM created in the background through qemu+ssh://root@127.0.0.1/system, from an image
    given by path as a user gives theirs. The image has Docker: installing it under software
    emulation would cost minutes of both cores, and the install on a bare Debian host is the
    same provisioning code that test_cli_env and test_provision run on bare hosts."""
    tmp = tmp_path_factory.mktemp("ssh")
    with root_ssh(tmp) as key, ssh_agent(key, tmp) as agent:
        cli.env["SSH_AUTH_SOCK"] = agent  # the key, for this module's later commands too
        uri = "qemu+ssh://root@127.0.0.1/system"
        image = ensure_vm_images((VM_IMAGE,))[VM_IMAGE]
        cli.env["DOCKERDASH_KVM_IMAGE_DIR"] = str(image.parent)  # the one folder for images
        # As a user's image new to the hypervisor: it goes through the SSH connection.
        delete_volume(f"{IMAGE_PREFIX}{file_digest(image)}.qcow2")
        create = cli.background(
            "machine", "create", "-d", "kvm", "--kvm-connect-uri", uri,
            "--kvm-image", str(image), "--kvm-cache-mode", "unsafe", "-v", REMOTE,
        )  # fmt: skip
        try:
            yield create, uri
        finally:
            if create.poll() is None:
                create.kill()
            create.wait()
            cli("machine", "rm", "-y", "-f", REMOTE, check=False)
            remove_vm(f"dockerdash-{REMOTE}")


@pytest.fixture(scope="module")
def vm(cli) -> str:
    try:
        created = cli("machine", "create", "-d", "kvm", "-v", LOCAL)
        assert created.stdout.rstrip().endswith("Done"), created.stdout
        yield LOCAL
    finally:
        cli("machine", "rm", "-y", "-f", LOCAL, check=False)
        remove_vm(f"dockerdash-{LOCAL}")


# -- without a VM ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_create_form_offers_kvm_with_its_fields(admin_client_):
    kvm = Driver.objects.get(kind="kvm")
    page = admin_client_.get(reverse("machines:create")).content.decode()
    assert f'<option value="{kvm.pk}"' in page
    fields = admin_client_.get(reverse("machines:driver_fields"), {"driver": kvm.pk})
    html = fields.content.decode()
    for field in ("cpu_count", "memory", "disk_size", "network", "cache_mode", "io_mode"):
        assert f'name="opt-{field}"' in html
    assert 'name="opt-image"' in html and 'name="opt-ssh_user"' in html
    bad = admin_client_.post(
        reverse("machines:create"),
        {"name": "vm-1", "driver": kvm.pk, "opt-cpu_count": "1", "opt-memory": "1024",
         "opt-disk_size": "20000", "opt-cache_mode": "default", "opt-io_mode": "native",
         "opt-ssh_user": "root"},
    )  # fmt: skip
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "native I/O needs the cache mode none or directsync" in text
    assert "Root logins stay disabled on VMs" in text


@pytest.mark.django_db
def test_a_vm_under_software_emulation_says_so_on_its_page(admin_client_):
    machine = make_machine(
        Driver.objects.get(kind="kvm"),
        name="slow-1",
        driver_options={"accel": "tcg", "note": "slow: no KVM acceleration on this host"},
    )
    page = admin_client_.get(machine.get_absolute_url()).content.decode()
    assert "slow: no KVM acceleration on this host" in page


def test_without_libvirt_the_list_works_and_kvm_says_what_is_missing(tmp_path):
    # A Python where `import libvirt` fails, as on a machine without libvirt-python.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "libvirt.py").write_text("raise ImportError('no libvirt here')\n")
    env = user_env(tmp_path / "data", PYTHONPATH=str(shadow))
    cli = CLI(env)
    cli("migrate", "--noinput")
    failed = cli("machine", "create", "-d", "kvm", "vm-1", check=False)
    assert failed.returncode == 1
    assert "libvirt is not installed/running: the Python binding is missing" in failed.stderr
    listed = cli("machine", "ls", "--format", "{{.Name}} {{.DriverName}} {{.State}}")
    assert listed.stdout.split() == ["vm-1", "kvm", "Error"]

    # The binding is there, the daemon is not.
    libvirt_module()
    cli = CLI(user_env(tmp_path / "data"))
    down = "qemu+ssh://root@127.0.0.1:1/system"  # no sshd, no libvirtd there
    failed = cli("machine", "create", "-d", "kvm", "--kvm-connect-uri", down, "vm-2", check=False)
    assert failed.returncode == 1
    assert f"libvirt is not installed/running: cannot connect to {down}" in failed.stderr


def test_an_image_url_is_downloaded_once_into_the_cache(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("DOCKERDASH_CACHE_DIR", str(tmp_path / "cache"))
    served = tmp_path / "www"
    served.mkdir()
    (served / "debian-12-genericcloud-amd64.qcow2").write_bytes(b"QFI\xfb" + bytes(4096))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=served)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    settings.KVM_IMAGE_MIRRORS = [base]  # a local mirror, allowed by the administrator
    settings.KVM_IMAGE_DIR = tmp_path / "images"
    try:
        lines: list[str] = []
        path = fetch_image(f"{base}/debian-12-genericcloud-amd64.qcow2", lines.append)
        assert path.read_bytes()[:4] == b"QFI\xfb" and image_format(path) == "qcow2"
        assert any(line.startswith("Downloaded") for line in lines)
        (served / "debian-12-genericcloud-amd64.qcow2").unlink()  # the cache answers now
        again = fetch_image(f"{base}/debian-12-genericcloud-amd64.qcow2", lines.append)
        assert again == path
        with pytest.raises(HostImageError, match=r"Downloading .*/missing.qcow2 failed: 404"):
            fetch_image(f"{base}/missing.qcow2")
        with pytest.raises(HostImageError, match="is not a file in the image folder"):
            fetch_image(str(tmp_path / "nothing.qcow2"))
    finally:
        server.shutdown()
        server.server_close()
    assert not list((tmp_path / "cache" / "images").glob("*.partial"))


# -- real VMs ------------------------------------------------------------------------------


@pytest.mark.libvirt
def test_a_vm_runs_containers_on_its_own_kernel(cli, remote, vm, tmp_path):
    listed = cli("machine", "ls", "--format", "{{.Name}} {{.DriverName}} {{.State}} {{.URL}}")
    ip = cli("machine", "ip", vm).stdout.strip()
    assert f"{vm} kvm Running tcp://{ip}:2376" in listed.stdout
    assert ip.startswith("10.215.0.")  # the test network's DHCP lease
    assert domain_state(f"dockerdash-{vm}") == "running"

    guest_kernel = cli("machine", "ssh", vm, "uname -r").stdout.strip()
    assert guest_kernel.endswith("-cloud-amd64") and guest_kernel != os.uname().release
    (tmp_path / "tiny.tar").write_bytes(tiny_image_tar(("true", "uname")))
    ran = cli.sh(
        f'eval "$({MANAGE} machine env {vm})" && '
        f"{DOCKER} import - tiny-uname:1 < {tmp_path}/tiny.tar >/dev/null && "
        f"{DOCKER} run --rm tiny-uname:1 /bin/uname -r"
    )
    # A container shares the kernel of the engine's host: the VM's.
    assert ran.stdout.strip() == guest_kernel

    inspect = cli("machine", "inspect", vm).stdout
    assert '"accel": "tcg"' in inspect  # no KVM on this CI: software emulation, said so


@pytest.mark.libvirt
def test_stop_start_restart_kill_follow_libvirt(cli, vm):
    domain = f"dockerdash-{vm}"
    boot_id = "cat /proc/sys/kernel/random/boot_id"
    for action, state, in_libvirt in [
        ("stop", "Stopped", "shut off"),
        ("start", "Running", "running"),
        ("restart", "Running", "running"),
        ("kill", "Stopped", "shut off"),
    ]:
        before = cli("machine", "ssh", vm, boot_id).stdout if action == "restart" else ""
        done = cli("machine", action, vm)
        assert done.stdout.rstrip().endswith("Done"), done.stdout
        assert cli("machine", "status", vm).stdout.strip() == state, action
        assert domain_state(domain) == in_libvirt, action
        if action in ("start", "restart"):
            # Up again with SSH and Docker; a restart is a new boot of the VM.
            after = cli("machine", "ssh", vm, boot_id).stdout
            assert after.strip() and after != before
            version = cli.sh(f'eval "$({MANAGE} machine env {vm})" && {DOCKER} version')
            assert "Server:" in version.stdout


@pytest.mark.libvirt
def test_rm_leaves_no_domain_disk_or_seed(cli, vm):
    domain = f"dockerdash-{vm}"
    assert pool_volumes(domain) == [f"{domain}-seed.iso", f"{domain}.qcow2"]
    removed = cli("machine", "rm", "-y", vm)
    assert f"Successfully removed {vm}" in removed.stdout
    assert domain_state(domain) == "absent"
    assert pool_volumes(domain) == []
    assert vm not in cli("machine", "ls", "-q").stdout.split()


@pytest.mark.libvirt
def test_a_remote_hypervisor_over_ssh_boots_the_users_image(cli, remote):
    create, uri = remote
    output, _ = create.communicate(timeout=540)
    assert create.returncode == 0 and output.rstrip().endswith("Done"), output
    # The image went through the connection to the hypervisor's pool; its Docker was kept.
    assert f"to the pool dockerdash on {uri}\n" in output
    assert "Docker is installed; keeping it" in output
    guest_kernel = cli("machine", "ssh", REMOTE, "uname -r").stdout.strip()
    assert guest_kernel != os.uname().release
    version = cli.sh(f'eval "$({MANAGE} machine env {REMOTE})" && {DOCKER} version')
    assert "Server:" in version.stdout

    # Its options are the domain's: a throwaway VM's disk may ignore flushes (dpkg fsyncs a lot).
    assert "cache='unsafe'" in domain_xml(f"dockerdash-{REMOTE}")

    # Deleted in virt-manager (or virsh): dockerdash says so instead of pretending.
    remove_vm(f"dockerdash-{REMOTE}")
    failed = cli("machine", "start", REMOTE, check=False)
    assert "does not exist on qemu+ssh://root@127.0.0.1/system" in failed.stderr
    assert "removed outside dockerdash?" in failed.stderr
    assert cli("machine", "status", REMOTE).stdout.strip() == "Error"
    cli("machine", "rm", "-y", REMOTE)
    assert pool_volumes(f"dockerdash-{REMOTE}") == []
