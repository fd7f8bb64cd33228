"""The libvirt side of the test fleet: what a test asks libvirt directly (a VM's state, the
pool's volumes), the cleanup of a test's VMs, and root SSH to this machine for qemu+ssh://.

`make test` starts libvirtd and the test network (scripts/test-libvirt) and builds the VM
images (manage.py build_vm_image); in CI a missing piece fails the tests instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from machines.drivers.kvm.hypervisor import POOL, connect_uri

from .fleet import _unavailable

NETWORK = os.getenv("DOCKERDASH_KVM_NETWORK", "")


def libvirt_module():
    try:
        import libvirt
    except ImportError:
        _unavailable("libvirt-python is not installed (make venv, with libvirt-dev installed)")
    libvirt.registerErrorHandler(lambda _ctx, _error: None, None)
    return libvirt


def check_hypervisor() -> str:
    """The test hypervisor's URI, once libvirtd answers and the test network is active."""
    libvirt = libvirt_module()
    uri = connect_uri("")
    if not NETWORK:
        _unavailable("no test network (run as root: `make test` starts scripts/test-libvirt)")
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as e:
        _unavailable(f"libvirtd does not answer at {uri}: {e}")
    try:
        if not conn.networkLookupByName(NETWORK).isActive():
            _unavailable(f"the libvirt network {NETWORK} is not active (scripts/test-libvirt)")
    finally:
        conn.close()
    return uri


@contextlib.contextmanager
def hypervisor(uri: str = "") -> Iterator:
    conn = libvirt_module().open(uri or connect_uri(""))
    try:
        yield conn
    finally:
        conn.close()


def domain_state(name: str) -> str:
    """running, shut off, ... as virsh says it; "absent" when there is no such domain."""
    libvirt = libvirt_module()
    names = {
        libvirt.VIR_DOMAIN_RUNNING: "running",
        libvirt.VIR_DOMAIN_PAUSED: "paused",
        libvirt.VIR_DOMAIN_SHUTDOWN: "in shutdown",
        libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
        libvirt.VIR_DOMAIN_CRASHED: "crashed",
    }
    with hypervisor() as conn:
        try:
            state, _ = conn.lookupByName(name).state()
        except libvirt.libvirtError:
            return "absent"
    return names.get(state, str(state))


def domain_xml(name: str) -> str:
    with hypervisor() as conn:
        return conn.lookupByName(name).XMLDesc(0)


def pool_volumes(prefix: str) -> list[str]:
    with hypervisor() as conn:
        pool = conn.storagePoolLookupByName(POOL)
        pool.refresh(0)
        return sorted(v for v in pool.listVolumes() if v.startswith(prefix))


def remove_vm(domain: str) -> None:
    """Whatever a test's VM left: its domain, disk and seed (never the shared images)."""
    libvirt = libvirt_module()
    with hypervisor() as conn:
        with contextlib.suppress(libvirt.libvirtError):
            dom = conn.lookupByName(domain)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        with contextlib.suppress(libvirt.libvirtError):
            pool = conn.storagePoolLookupByName(POOL)
            for volume in (f"{domain}.qcow2", f"{domain}-seed.iso"):
                with contextlib.suppress(libvirt.libvirtError):
                    pool.storageVolLookupByName(volume).delete(0)


def delete_volume(name: str) -> None:
    libvirt = libvirt_module()
    with hypervisor() as conn, contextlib.suppress(libvirt.libvirtError):
        conn.storagePoolLookupByName(POOL).storageVolLookupByName(name).delete(0)


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def ssh_agent(key: Path, tmp: Path) -> Iterator[str]:
    """An ssh-agent holding `key` (its socket's path): how libvirt's SSH transport gets a
    key now that URIs take no keyfile= parameter."""
    sock = tmp / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True)
        yield str(sock)
    finally:
        agent.terminate()
        agent.wait(10)


@contextlib.contextmanager
def root_ssh(tmp: Path) -> Iterator[Path]:
    """This machine's sshd letting a key of the test's own in as root (started for the test
    when none listens on port 22); root's ~/.ssh is put back as it was after.
    Yields the private key's path."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        _unavailable("sshd is not installed (apt-get install openssh-server)")
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    ssh_dir = Path.home() / ".ssh"
    # ssh keeps the previous known_hosts as known_hosts.old when it learns a host's keys.
    files = [ssh_dir / n for n in ("authorized_keys", "known_hosts", "known_hosts.old")]
    saved = {path: path.read_bytes() if path.exists() else None for path in files}
    made_dir = not ssh_dir.exists()
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    with files[0].open("a") as f:
        f.write(Path(f"{key}.pub").read_text())
    daemon = None
    try:
        if not _answers(22):
            subprocess.run(["ssh-keygen", "-A"], check=True)
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            args = [sshd, "-D", "-e", "-p", "22", "-o", "ListenAddress=127.0.0.1"]
            daemon = subprocess.Popen([*args, "-o", f"PidFile={tmp}/sshd.pid"])
            deadline = time.monotonic() + 30
            while not _answers(22) and time.monotonic() < deadline:
                time.sleep(0.2)
        # Known beforehand, as a user's KVM server is: URIs take no no_verify=1 any more.
        scan = subprocess.run(["ssh-keyscan", "127.0.0.1"], capture_output=True, check=True)
        with files[1].open("ab") as f:
            f.write(scan.stdout)
        yield key
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(10)
        for path, content in saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        if made_dir and not any(ssh_dir.iterdir()):
            ssh_dir.rmdir()
