"""What a VM is made of: its libvirt domain XML and its cloud-init NoCloud seed.

Every image boots the same way: BIOS, the image's own boot loader, and cloud-init reading the
seed (an ISO labelled `cidata`) for the hostname, the user and the machine's own SSH key.
That is how a stock Debian or Ubuntu cloud image expects to start, and ours does the same.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from machines.lib.errors import DriverError

METADATA_NS = "urn:dockerdash:machine"
# Software emulation translates guest code into a cache that grows to 1 GiB by default.
TCG_CACHE_MIB = 256
LIBVIRT_TCG_FEATURE = 8_000_000  # <tcg><tb-cache> appeared in libvirt 8.0


@dataclass(frozen=True)
class VM:
    name: str  # the libvirt domain's name
    uuid: str
    machine: str
    instance: str  # the dashboard that made it (settings.INSTANCE_ID)
    domain_type: str  # kvm, or qemu (software emulation)
    memory_mib: int
    cpus: int
    pool: str
    disk: str  # volume names in the pool
    seed: str
    network: str
    mac: str
    cache_mode: str
    io_mode: str


def random_mac() -> str:
    # 52:54:00 is QEMU's prefix: libvirt and the guests' tools recognise it.
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def domain_xml(vm: VM, libvirt_version: int) -> str:
    q = quoteattr
    cache = "" if vm.cache_mode == "default" else f" cache={q(vm.cache_mode)}"
    emulated = vm.domain_type == "qemu"
    tcg = (
        f"<tcg><tb-cache unit='MiB'>{TCG_CACHE_MIB}</tb-cache></tcg>"
        if emulated and libvirt_version >= LIBVIRT_TCG_FEATURE
        else ""
    )
    cpu = "" if emulated else "<cpu mode='host-passthrough' check='none'/>"
    return f"""<domain type={q(vm.domain_type)}>
  <name>{vm.name}</name>
  <uuid>{vm.uuid}</uuid>
  <metadata>
    <dockerdash:machine xmlns:dockerdash={q(METADATA_NS)} name={q(vm.machine)}
        instance={q(vm.instance)}/>
  </metadata>
  <memory unit='MiB'>{vm.memory_mib}</memory>
  <vcpu>{vm.cpus}</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/>{tcg}</features>
  {cpu}
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'{cache} io={q(vm.io_mode)} discard='unmap'/>
      <source pool={q(vm.pool)} volume={q(vm.disk)}/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source pool={q(vm.pool)} volume={q(vm.seed)}/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <source network={q(vm.network)}/>
      <mac address={q(vm.mac)}/>
      <model type='virtio'/>
    </interface>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='virtio'/>
  </devices>
</domain>
"""


def user_data(hostname: str, user: str, public_key: str) -> str:
    """cloud-config (JSON is YAML): the machine's name, one user with the machine's own key
    and passwordless sudo, no password logins, no root logins."""
    config = {
        "hostname": hostname,
        "manage_etc_hosts": True,
        "ssh_pwauth": False,
        "disable_root": True,
        # One host key type: RSA key generation alone takes seconds under emulation.
        "ssh_deletekeys": True,
        "ssh_genkeytypes": ["ed25519"],
        "users": [
            {
                "name": user,
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "shell": "/bin/bash",
                "lock_passwd": True,
                "ssh_authorized_keys": [public_key],
            }
        ],
    }
    return "#cloud-config\n" + json.dumps(config, indent=2) + "\n"


def meta_data(instance_id: str, hostname: str) -> str:
    return json.dumps({"instance-id": instance_id, "local-hostname": hostname}) + "\n"


def seed_iso(instance_id: str, hostname: str, user: str, public_key: str) -> bytes:
    """The NoCloud seed: an ISO 9660 volume labelled cidata with user-data and meta-data."""
    tool = shutil.which("genisoimage") or shutil.which("xorrisofs") or shutil.which("mkisofs")
    if tool is None:
        raise DriverError(
            "Making the VM's cloud-init seed needs genisoimage: apt-get install genisoimage"
        )
    with tempfile.TemporaryDirectory(prefix="dockerdash-seed-") as tmp:
        folder = Path(tmp)
        (folder / "user-data").write_text(user_data(hostname, user, public_key))
        (folder / "meta-data").write_text(meta_data(instance_id, hostname))
        iso = folder / "seed.iso"
        args = [tool, "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock"]
        done = subprocess.run(
            [*args, folder / "user-data", folder / "meta-data"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise DriverError(f"Making the cloud-init seed failed: {done.stderr.strip()}")
        return iso.read_bytes()
