"""kvm: a VM on libvirt, on this machine's hypervisor or on a KVM server over SSH.

Like docker-machine's kvm driver and minikube's kvm2: each machine is a libvirt domain whose
disk is a copy-on-write overlay on a base image in a storage pool, first booted by cloud-init
from a NoCloud seed. The base image is dockerdash's Debian 12 (`manage.py build_vm_image`,
built on the first create when missing) or the user's own cloud image; both boot the same way.
Where the hypervisor has no hardware virtualisation, the VM runs under software emulation.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from django.conf import settings

from machines.drivers.base import BaseDriver, DriverError, SSHAddress
from machines.drivers.kvm import guest
from machines.drivers.kvm.forms import DEFAULT_USER, KVMOptionsForm, KVMSettingsForm
from machines.drivers.kvm.hypervisor import POOL, Hypervisor, connect_uri
from machines.lib import vmimage
from machines.lib.imagecheck import inspect_image
from machines.lib.rootfs import HostImageError
from machines.lib.ssh import public_key_of, wait_for_ssh

if TYPE_CHECKING:
    from machines.models import Machine

ADDRESS_WAIT = 300
SSH_WAIT = 300
STOP_TIMEOUT = 90
SLOW_NOTE = "slow: no KVM acceleration on this host"
# Shared images in the pool; "_" never occurs in a machine's name, so never in its volumes'.
BASE_PREFIX = "dockerdash_base_"  # + the cached file's name: vm-bookworm-<hash>.qcow2
IMAGE_PREFIX = "dockerdash_image_"  # + the hash of a user's image's content


class KVMDriver(BaseDriver):
    kind = "kvm"
    label = "KVM"
    description = "a VM on libvirt, here or on a KVM server over SSH"
    settings_form = KVMSettingsForm
    options_form = KVMOptionsForm
    # Empty URI: LIBVIRT_DEFAULT_URI, else qemu:///system; usable without settings.
    default_settings = {"connect_uri": ""}

    @property
    def uri(self) -> str:
        return connect_uri(self.settings.get("connect_uri", ""))

    def hypervisor(self) -> Hypervisor:
        return Hypervisor(self.uri)

    def domain_name(self, machine: Machine) -> str:
        return f"dockerdash-{machine.name}"

    def volume_names(self, machine: Machine) -> tuple[str, str]:
        """The VM's disk and its cloud-init seed, in the pool."""
        name = self.domain_name(machine)
        return f"{name}.qcow2", f"{name}-seed.iso"

    def _domain(self, hv: Hypervisor, machine: Machine) -> Any:
        dom = hv.domain(self.domain_name(machine))
        if dom is None:
            raise DriverError(
                f"The VM {self.domain_name(machine)} of {machine.name} does not exist on "
                f"{self.uri} (removed outside dockerdash?)"
            )
        return dom

    # -- options -----------------------------------------------------------------------
    def apply_options(self, machine: Machine, options: dict) -> None:
        initial = {k: f.initial for k, f in KVMOptionsForm.base_fields.items()}
        value = {k: options.get(k) or initial[k] for k in initial}
        machine.driver_options = {
            "cpu_count": value["cpu_count"],
            "memory": value["memory"],
            "disk_size": value["disk_size"],
            "network": value["network"] or settings.KVM_NETWORK,
            "cache_mode": value["cache_mode"],
            "io_mode": value["io_mode"],
            "image": value["image"] or "",
        }
        machine.ssh_user = value["ssh_user"] or DEFAULT_USER
        machine.ssh_port = 22

    # -- create ------------------------------------------------------------------------
    def create(self, machine: Machine, log=print) -> None:
        name = self.domain_name(machine)
        with self.hypervisor() as hv:
            dom = hv.domain(name)
            if dom is None:
                dom = self._define(hv, machine, log)
            else:
                log(f"Reusing the VM {name} made by an earlier attempt")
            self._boot(hv, dom, machine, log)

    def _define(self, hv: Hypervisor, machine: Machine, log) -> Any:
        opts = machine.driver_options
        name = self.domain_name(machine)
        domain_type = hv.domain_type()
        if domain_type == "qemu":
            log(
                f"{self.uri} offers no hardware virtualisation (KVM): the VM runs under "
                f"software emulation (TCG); {SLOW_NOTE}"
            )
            opts.update(accel="tcg", note=SLOW_NOTE)
        else:
            log(f"{self.uri}: KVM acceleration")
            opts.update(accel="kvm")
            opts.pop("note", None)
        hv.check_network(opts["network"])
        pool = hv.pool()
        base = self._base_volume(hv, pool, opts.get("image", ""), log)
        disk_name, seed_name = self.volume_names(machine)
        hv.overlay(pool, disk_name, base, opts["disk_size"])
        vm_uuid = str(uuid.uuid4())
        public_key = public_key_of(machine.ssh_private_key) + " dockerdash"
        seed = guest.seed_iso(vm_uuid, machine.name, machine.ssh_user, public_key)
        hv.upload_bytes(pool, seed_name, seed)
        vm = guest.VM(
            name=name,
            uuid=vm_uuid,
            machine=machine.name,
            instance=settings.INSTANCE_ID,
            domain_type=domain_type,
            memory_mib=opts["memory"],
            cpus=opts["cpu_count"],
            pool=POOL,
            disk=disk_name,
            seed=seed_name,
            network=opts["network"],
            mac=guest.random_mac(),
            cache_mode=opts["cache_mode"],
            io_mode=opts["io_mode"],
        )
        xml = guest.domain_xml(vm, hv.version())
        dom = hv.call("defining the VM", hv.conn.defineXML, xml)
        log(
            f"Defined {name} ({domain_type}): {vm.cpus} CPU, {vm.memory_mib} MiB, a "
            f"{opts['disk_size']} MiB disk over {base.name()}, network {vm.network}"
        )
        return dom

    def _base_volume(self, hv: Hypervisor, pool: Any, source: str, log) -> Any:
        """The image every VM of this kind starts from, in the pool (uploaded once)."""
        try:
            if source:
                path = vmimage.fetch_image(source, log)
                fmt = inspect_image(path, source)  # no backing or data file, no json: name
                name = f"{IMAGE_PREFIX}{vmimage.file_digest(path)}.{fmt}"
                log(f"Image {source} ({fmt})")
            else:
                if not vmimage.vm_image_path(vmimage.VM_IMAGE).exists():
                    log("Building the VM base image (once; it is cached for every later VM)")
                path = vmimage.ensure_vm_images((vmimage.VM_IMAGE,), log=log)[vmimage.VM_IMAGE]
                name = f"{BASE_PREFIX}{path.name}"
        except HostImageError as e:
            raise DriverError(str(e)) from None
        volume = hv.upload(pool, name, path, log)
        if not source:
            hv.prune(pool, BASE_PREFIX, name, log)
        return volume

    def _boot(self, hv: Hypervisor, dom: Any, machine: Machine, log=print) -> None:
        started = time.monotonic()
        if not hv.call("reading the VM's state", dom.isActive):
            self._start_domain(hv, dom, log)
            log(f"Started {dom.name()}; waiting for its address")
        machine.ip = self._wait_address(hv, dom, machine)
        log(f"{dom.name()} has the address {machine.ip}; waiting for SSH")
        with wait_for_ssh(
            machine.ip,
            22,
            machine.ssh_user,
            machine.ssh_private_key,
            machine.ssh_host_key,
            timeout=SSH_WAIT,
        ) as session:
            machine.ssh_host_key = session.host_key
        log(f"SSH answers {time.monotonic() - started:.1f} s after the VM started")

    @staticmethod
    def _start_domain(hv: Hypervisor, dom: Any, log) -> None:
        """Start the domain; once more a second later when libvirt could not make its cgroup
        ("Failed to create v1 controller cpu for group: No such file or directory", seen once
        on a cgroup v1 host with two VMs starting at the same moment): a transient error."""
        try:
            hv.call("starting the VM", dom.create)
        except DriverError as e:
            if "controller" not in str(e) or "for group" not in str(e):
                raise
            log(f"{e}; trying once more")
            time.sleep(1)
            hv.call("starting the VM", dom.create)

    def _wait_address(self, hv: Hypervisor, dom: Any, machine: Machine) -> str:
        deadline = time.monotonic() + ADDRESS_WAIT
        while time.monotonic() < deadline:
            if not hv.call("reading the VM's state", dom.isActive):
                raise DriverError(f"The VM {dom.name()} stopped while booting")
            if found := hv.addresses(dom):
                return found[0]
            time.sleep(1)
        raise DriverError(
            f"The VM {dom.name()} got no address within {ADDRESS_WAIT} s on the network "
            f"{machine.driver_options.get('network')} (does it hand out DHCP leases?)"
        )

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, machine: Machine) -> None:
        with self.hypervisor() as hv:
            self._boot(hv, self._domain(hv, machine), machine, self.log)

    def stop(self, machine: Machine) -> None:
        """ACPI shutdown (the power button), then pulling the plug after STOP_TIMEOUT."""
        with self.hypervisor() as hv:
            dom = self._domain(hv, machine)
            running = hv.libvirt.VIR_DOMAIN_RUNNING
            deadline = time.monotonic() + STOP_TIMEOUT
            pressed = 0.0
            while hv.call("reading the VM's state", dom.isActive):
                if time.monotonic() > deadline:
                    self.log(f"{dom.name()} did not shut down within {STOP_TIMEOUT} s: power off")
                    self._unless_stopped(hv, dom, "stopping the VM", dom.destroy)
                    return
                # A press while the guest is still starting up may go unheard: press again
                # (not while it is shutting down: libvirt refuses that).
                if self._state(hv, dom) == running and time.monotonic() - pressed > 15:
                    flag = hv.libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN
                    self._unless_stopped(hv, dom, "shutting the VM down", dom.shutdownFlags, flag)
                    self.log(f"Pressed the power button of {dom.name()} (ACPI shutdown)")
                    pressed = time.monotonic()
                time.sleep(0.5)
            self.log(f"{dom.name()} is shut off")

    def restart(self, machine: Machine) -> None:
        self.stop(machine)
        self.start(machine)

    def kill(self, machine: Machine) -> None:
        with self.hypervisor() as hv:
            dom = self._domain(hv, machine)
            self._unless_stopped(hv, dom, "stopping the VM", dom.destroy)

    def _state(self, hv: Hypervisor, dom: Any) -> int:
        state, _reason = hv.call("reading the VM's state", dom.state)
        return state

    def _unless_stopped(self, hv: Hypervisor, dom: Any, what: str, fn, *args: Any) -> None:
        """Call fn; that it failed because the VM stopped or is stopping is no failure."""
        try:
            hv.call(what, fn, *args)
        except DriverError:
            if self._state(hv, dom) == hv.libvirt.VIR_DOMAIN_RUNNING:
                raise

    def remove(self, machine: Machine) -> None:
        """The domain, its disk and its seed; the shared base image stays in the pool."""
        with self.hypervisor() as hv:
            if dom := hv.domain(self.domain_name(machine)):
                if hv.call("reading the VM's state", dom.isActive):
                    hv.call("stopping the VM", dom.destroy)
                lib = hv.libvirt
                flags = (
                    lib.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | lib.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                    | lib.VIR_DOMAIN_UNDEFINE_NVRAM
                )
                hv.call("removing the VM", dom.undefineFlags, flags)
            pool = hv.find("looking up the storage pool", hv.conn.storagePoolLookupByName, POOL)
            if pool is not None:
                for volume in self.volume_names(machine):
                    hv.delete_volume(pool, volume)

    def state(self, machine: Machine) -> str:
        with self.hypervisor() as hv:
            state = self._state(hv, self._domain(hv, machine))
            lib = hv.libvirt
        return {
            lib.VIR_DOMAIN_RUNNING: machine.State.RUNNING,
            lib.VIR_DOMAIN_BLOCKED: machine.State.RUNNING,
            lib.VIR_DOMAIN_PAUSED: machine.State.PAUSED,
            lib.VIR_DOMAIN_PMSUSPENDED: machine.State.PAUSED,
            lib.VIR_DOMAIN_SHUTDOWN: machine.State.STOPPING,
            lib.VIR_DOMAIN_SHUTOFF: machine.State.STOPPED,
            lib.VIR_DOMAIN_CRASHED: machine.State.ERROR,
        }.get(state, machine.State.ERROR)

    def ip(self, machine: Machine) -> str:
        with self.hypervisor() as hv:
            dom = self._domain(hv, machine)
            if not hv.call("reading the VM's state", dom.isActive):
                return ""
            found = hv.addresses(dom)
        return found[0] if found else ""

    def ssh_address(self, machine: Machine) -> SSHAddress:
        return SSHAddress(machine.ip, 22, machine.ssh_user)
