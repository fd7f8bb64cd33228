"""A libvirt connection in dockerdash's words: pools and volumes, networks, addresses, errors.

libvirt-python is imported here and only when a kvm machine is acted on, so that dockerdash
runs (and lists every machine) where libvirt is not installed; then acting on a kvm machine
says so in one sentence.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from machines.drivers.kvm.forms import uri_problem
from machines.lib.errors import DriverError
from machines.lib.hostimage import cache_dir

# The XML parsed here (noqa: S314) comes from the hypervisor we are connected to.
# The pool every kvm machine's volumes live in, on each hypervisor (made when missing).
POOL = "dockerdash"
POOL_PATH = "/var/lib/libvirt/images/dockerdash"
DEFAULT_URI = "qemu:///system"
UPLOAD_CHUNK = 1 << 20


def load_libvirt() -> Any:
    try:
        import libvirt
    except ImportError:
        raise DriverError(
            "libvirt is not installed/running: the Python binding is missing (as root: "
            "apt-get install libvirt-dev pkg-config gcc, then `make run` again: it adds the "
            "binding wherever libvirt-dev is installed)"
        ) from None
    # libvirt prints every error to stderr by default; we report them ourselves, once.
    libvirt.registerErrorHandler(lambda _ctx, _error: None, None)
    return libvirt


def connect_uri(configured: str) -> str:
    """The driver's URI; empty means libvirt's own default (LIBVIRT_DEFAULT_URI), as virsh.
    A configured one saved before the rule (or past the model) is refused here too."""
    if configured and (problem := uri_problem(configured)):
        raise DriverError(f"The libvirt URI {configured} is refused: {problem}")
    return configured or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI


def _batch(uri: str) -> str:
    """An SSH URI that never asks for a password: operations run without a terminal, where
    ssh would wait for one forever (libvirt's no_tty)."""
    if "+ssh://" not in uri.split("?", 1)[0] or "no_tty=" in uri:
        return uri
    return uri + ("&" if "?" in uri else "?") + "no_tty=1"


class Hypervisor:
    """One open connection (a context manager); every call's failure is a DriverError."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.libvirt = load_libvirt()
        try:
            self.conn = self.libvirt.open(_batch(uri))
        except self.libvirt.libvirtError as e:
            raise DriverError(
                f"libvirt is not installed/running: cannot connect to {uri}: "
                f"{e.get_error_message()}"
            ) from None

    def __enter__(self) -> Hypervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(self.libvirt.libvirtError):
            self.conn.close()

    def call(self, what: str, fn: Callable, *args: Any) -> Any:
        try:
            return fn(*args)
        except self.libvirt.libvirtError as e:
            raise DriverError(f"{what} failed on {self.uri}: {e.get_error_message()}") from None

    def find(self, what: str, fn: Callable, *args: Any) -> Any | None:
        """A lookup: the object, or None when it does not exist."""
        lib = self.libvirt
        absent = {
            lib.VIR_ERR_NO_DOMAIN,
            lib.VIR_ERR_NO_NETWORK,
            lib.VIR_ERR_NO_STORAGE_POOL,
            lib.VIR_ERR_NO_STORAGE_VOL,
        }
        try:
            return fn(*args)
        except lib.libvirtError as e:
            if e.get_error_code() in absent:
                return None
            raise DriverError(f"{what} failed on {self.uri}: {e.get_error_message()}") from None

    # -- what the hypervisor can do ------------------------------------------------------
    def domain_type(self) -> str:
        """kvm where the hypervisor offers KVM on a CPU with hardware virtualisation, else
        qemu (software emulation). DOCKERDASH_KVM_DOMAIN_TYPE overrides the probe."""
        if forced := settings.KVM_DOMAIN_TYPE:
            return forced
        caps = ET.fromstring(self.call("reading the capabilities", self.conn.getCapabilities))  # noqa: S314
        offers_kvm = any(d.get("type") == "kvm" for d in caps.iter("domain"))
        cpu_features = {f.get("name") for f in caps.findall("host/cpu/feature")}
        # KVM-PVM and similar offer a kvm domain type without vmx/svm; stock kernels hang there.
        return "kvm" if offers_kvm and cpu_features & {"vmx", "svm"} else "qemu"

    def version(self) -> int:
        return self.call("asking for the version", self.conn.getLibVersion)

    # -- networks ------------------------------------------------------------------------
    def check_network(self, name: str) -> None:
        net = self.find("looking up the network", self.conn.networkLookupByName, name)
        if net is None:
            raise DriverError(
                f"The libvirt network {name} does not exist on {self.uri}: give another one "
                f"(virsh net-list --all) with --kvm-network"
            )
        if not net.isActive():
            raise DriverError(
                f"The libvirt network {name} on {self.uri} is not active: "
                f"virsh net-start {name} (and virsh net-autostart {name})"
            )

    # -- the pool and its volumes --------------------------------------------------------
    def pool(self) -> Any:
        pool = self.find("looking up the storage pool", self.conn.storagePoolLookupByName, POOL)
        if pool is None:
            xml = (
                f"<pool type='dir'><name>{POOL}</name>"
                f"<target><path>{POOL_PATH}</path></target></pool>"
            )
            pool = self.call("defining the storage pool", self.conn.storagePoolDefineXML, xml)
            self.call("building the storage pool", pool.build, 0)
            self.call("setting the pool to autostart", pool.setAutostart, 1)
        if not pool.isActive():
            self.call("starting the storage pool", pool.create, 0)
        return pool

    def volume(self, pool: Any, name: str) -> Any | None:
        return self.find("looking up a volume", pool.storageVolLookupByName, name)

    def delete_volume(self, pool: Any, name: str) -> bool:
        vol = self.volume(pool, name)
        if vol is None:
            return False
        self.call(f"deleting the volume {name}", vol.delete, 0)
        return True

    def upload(self, pool: Any, name: str, source: Path, log: Callable[[str], object]) -> Any:
        """The volume `name` with the file's content, uploaded through the connection (so a
        remote hypervisor gets it too) unless a complete copy is there already."""
        size = source.stat().st_size
        with _upload_lock(name):
            vol = self.volume(pool, name)
            if vol is not None and _physical(vol) == size:
                return vol
            if vol is not None:
                log(f"The volume {name} is incomplete (an interrupted upload?); uploading again")
                self.call("deleting an incomplete volume", vol.delete, 0)
            log(f"Uploading {source.name} ({size >> 20} MiB) to the pool {POOL} on {self.uri}")
            started = time.monotonic()
            xml = (
                f"<volume><name>{name}</name><capacity>0</capacity>"
                "<target><format type='raw'/></target></volume>"
            )
            vol = self.call("creating a volume", pool.createXML, xml, 0)
            try:
                self._send(vol, source, size)
            except BaseException:
                with contextlib.suppress(self.libvirt.libvirtError):
                    vol.delete(0)
                raise
            # The pool learns the format (qcow2 or raw) from the file's header.
            self.call("refreshing the pool", pool.refresh, 0)
            log(f"Uploaded in {time.monotonic() - started:.1f}s")
            return self.call("looking up a volume", pool.storageVolLookupByName, name)

    def _send(self, vol: Any, source: Path, size: int) -> None:
        stream = self.call("opening a stream", self.conn.newStream, 0)
        self.call("starting the upload", vol.upload, stream, 0, size, 0)
        with source.open("rb") as f:
            try:
                stream.sendAll(lambda _stream, nbytes, _f: f.read(min(nbytes, UPLOAD_CHUNK)), f)
                stream.finish()
            except self.libvirt.libvirtError as e:
                with contextlib.suppress(self.libvirt.libvirtError):
                    stream.abort()
                raise DriverError(
                    f"uploading {source.name} to {self.uri} failed: {e.get_error_message()}"
                ) from None

    def upload_bytes(self, pool: Any, name: str, data: bytes) -> Any:
        self.delete_volume(pool, name)
        xml = (
            f"<volume><name>{name}</name><capacity>0</capacity>"
            "<target><format type='raw'/></target></volume>"
        )
        vol = self.call("creating a volume", pool.createXML, xml, 0)
        stream = self.call("opening a stream", self.conn.newStream, 0)
        self.call("starting the upload", vol.upload, stream, 0, len(data), 0)
        self.call("uploading", stream.send, data)
        self.call("finishing the upload", stream.finish)
        return vol

    def prune(self, pool: Any, prefix: str, keep: str, log: Callable[[str], object]) -> None:
        """Delete the volumes named prefix* (but `keep`) that no VM's disk is backed by:
        base images of earlier recipes, once their last VM is gone."""
        names = self.call("listing the pool", pool.listVolumes)
        vols = [v for v in (self.volume(pool, n) for n in names) if v is not None]
        backing = {_backing(v) for v in vols}
        for vol in vols:
            if vol.name().startswith(prefix) and vol.name() != keep and vol.path() not in backing:
                log(f"Deleting {vol.name()} from the pool (an earlier base image no VM uses)")
                self.call(f"deleting the volume {vol.name()}", vol.delete, 0)

    def overlay(self, pool: Any, name: str, base: Any, capacity_mib: int) -> Any:
        """A copy-on-write qcow2 on `base`, at least as large as the base's disk."""
        if vol := self.volume(pool, name):
            return vol
        _, base_capacity, _ = self.call("reading the base volume", base.info)
        capacity = max(capacity_mib << 20, base_capacity)
        base_format = _format(base)
        xml = (
            f"<volume><name>{name}</name><capacity>{capacity}</capacity>"
            "<target><format type='qcow2'/></target>"
            f"<backingStore><path>{base.path()}</path><format type='{base_format}'/>"
            "</backingStore></volume>"
        )
        return self.call("creating the VM's disk", pool.createXML, xml, 0)

    # -- domains ---------------------------------------------------------------------------
    def domain(self, name: str) -> Any | None:
        return self.find("looking up the VM", self.conn.lookupByName, name)

    def addresses(self, dom: Any) -> list[str]:
        """The VM's IPv4 addresses: the network's DHCP leases, else the guest agent, else the
        hypervisor's ARP table (for bridged networks with a DHCP server of their own)."""
        lib = self.libvirt
        sources = [
            lib.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            lib.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
            lib.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
        ]
        for source in sources:
            try:
                interfaces = dom.interfaceAddresses(source, 0) or {}
            except lib.libvirtError:
                continue  # no agent, or a libvirt without this source
            found = [
                addr["addr"]
                for iface in interfaces.values()
                for addr in iface.get("addrs") or []
                if addr.get("type") == lib.VIR_IP_ADDR_TYPE_IPV4
            ]
            if found:
                return found
        return []


def _physical(vol: Any) -> int:
    node = ET.fromstring(vol.XMLDesc(0)).find("physical")  # noqa: S314
    return int(node.text) if node is not None and node.text else -1


def _backing(vol: Any) -> str:
    node = ET.fromstring(vol.XMLDesc(0)).find("backingStore/path")  # noqa: S314
    return node.text or "" if node is not None else ""


def _format(vol: Any) -> str:
    node = ET.fromstring(vol.XMLDesc(0)).find("target/format")  # noqa: S314
    return node.get("type", "raw") if node is not None else "raw"


@contextlib.contextmanager
def _upload_lock(name: str) -> Iterator[None]:
    """Concurrent creates on this dashboard upload a base image once; the others wait."""
    locks = cache_dir() / "locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
        handle = (locks / f"upload-{name}.lock").open("w")
    except OSError:
        yield  # no writable cache: uploads are still correct, only perhaps repeated
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
