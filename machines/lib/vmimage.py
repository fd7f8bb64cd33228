"""Debian 12 disk images that VMs boot (the kvm driver's base images), built offline.

The host images' bare root filesystem (rootfs.py, hostimage.py) plus a kernel, udev, cloud-init
and DHCP, written into a partitioned, BIOS-bootable disk without loop mounts: `mkfs.ext4 -d`
fills the file system at a 1 MiB offset, the MBR and GRUB's core image go in front of it (what
grub-install would write there), and `qemu-img convert` makes the qcow2. The image boots like
any cloud image (BIOS, GRUB, cloud-init from a NoCloud seed), so a user's own image and ours
take the same path.

Cached like the host images: the recipe's hash is in the file name, and the host images' build
lock makes concurrent builds one. Plain Python (no Django).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import struct
import time
import urllib.parse
from pathlib import Path

from machines.lib.hostimage import (
    BARE_HOST_IMAGE,
    cache_dir,
    ensure_rootfs_tarballs,
    locked,
    rootfs_hashes,
)
from machines.lib.imagecheck import download, local_image
from machines.lib.rootfs import (
    CHROOT_ENV,
    DOCKER_PACKAGES,
    HostImageError,
    Log,
    add_docker,
    run,
    workdir,
)

VM_IMAGE = "bookworm"
BARE_VM_IMAGE = "bookworm-bare"
ALL_VM_IMAGES = (BARE_VM_IMAGE, VM_IMAGE)

# The cloud kernel: virtio and the emulated PC's disks, a third of the generic one's modules.
VM_PACKAGES = (
    "linux-image-cloud-amd64",
    "udev",
    "cloud-init",
    "cloud-guest-utils",  # growpart: the root partition grows to the VM's disk size
    "ifupdown",
    "isc-dhcp-client",
    "qemu-guest-agent",
    # Debian's kernels enable AppArmor: Docker then needs the parser for its default profile.
    "apparmor",
)
ROOT_LABEL = "dockerdash"
# The root file system's size; each VM's overlay is larger and cloud-init grows it at first boot.
ROOT_MIB = 3072
ALIGN = 1 << 20  # the first partition starts at 1 MiB; GRUB's core image lives before it
GRUB_PREFIX = "(hd0,msdos1)/boot/grub"
GRUB_MODULES = ("biosdisk", "part_msdos", "ext2", "normal", "linux", "boot", "configfile")
GRUB_DIR = Path(os.environ.get("DOCKERDASH_GRUB_DIR", "/usr/lib/grub/i386-pc"))
GRUB_CFG = f"""\
set timeout=0
linux /vmlinuz root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0,115200n8 quiet
initrd /initrd.img
boot
"""
VM_FILES = {
    "etc/fstab": f"LABEL={ROOT_LABEL} / ext4 rw,discard,errors=remount-ro 0 1\n",
    # Only the seed: no minutes of probing for cloud metadata servers that are not there (read
    # after the package's 90_dpkg.cfg, which lists every data source).
    "etc/cloud/cloud.cfg.d/99_dockerdash.cfg": "datasource_list: [NoCloud, None]\n"
    # Our seed needs only the init stage (hostname, user, keys, growing the disk); the later
    # stages' modules cost half a minute of CPU under software emulation.
    "cloud_config_modules: []\n"
    "cloud_final_modules: [final_message]\n",
    # cloud-init makes the host keys. The host containers' unit would add RSA and ECDSA keys,
    # which take most of a minute to generate under emulation; here it only fills a gap.
    "etc/systemd/system/ssh-host-keys.service.d/vm.conf": "[Service]\nExecStart=\n"
    "ExecStart=/bin/sh -c 'test -e /etc/ssh/ssh_host_ed25519_key || "
    'ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key\'\n',
    "boot/grub/grub.cfg": GRUB_CFG,
    # Package descriptions in other languages: megabytes to fetch and parse on every update.
    "etc/apt/apt.conf.d/90dockerdash-no-translations": 'Acquire::Languages "none";\n',
}
# Masked for host containers (rootfs.MASKED_UNITS); a VM has its own kernel and consoles.
VM_UNMASKED_UNITS = (
    "getty.target",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "systemd-modules-load.service",
)
# The package lists stay: a VM's first `apt-get update` then fetches only what changed since the
# image was built (most of a minute less under software emulation).
CLEAN_APT = "apt-get clean\n"
BUILD_TOOLS = {
    "mkfs.ext4": "e2fsprogs",
    "qemu-img": "qemu-utils",
    "grub-mkimage": "grub-pc-bin",
    "debootstrap": "debootstrap",
    "unshare": "util-linux",
}


def vm_image_hashes() -> dict[str, str]:
    """Variant -> hash of its recipe: the host images' bare root filesystem, the VM's packages,
    files and units, and the code that builds the disk."""
    bare = _digest(
        {
            "rootfs": rootfs_hashes()[BARE_HOST_IMAGE],
            "packages": VM_PACKAGES,
            "files": VM_FILES,
            "unmasked": VM_UNMASKED_UNITS,
            "disk": (ROOT_LABEL, ROOT_MIB, ALIGN, GRUB_PREFIX, GRUB_MODULES),
            "code": [
                inspect.getsource(f)
                for f in (_configure_vm, _private_dev_chroot, _write_disk, _write_mbr)
            ],
        }
    )
    with_docker = _digest(
        {"base": bare, "packages": DOCKER_PACKAGES, "code": inspect.getsource(add_docker)}
    )
    return {BARE_VM_IMAGE: bare, VM_IMAGE: with_docker}


def vm_image_path(variant: str, hashes: dict[str, str] | None = None) -> Path:
    hashes = hashes or vm_image_hashes()
    return cache_dir() / f"vm-{variant}-{hashes[variant]}.qcow2"


def ensure_vm_images(
    variants: tuple[str, ...] = ALL_VM_IMAGES, *, force: bool = False, log: Log = print
) -> dict[str, Path]:
    """Make sure the VM images are in the cache; return variant -> qcow2 path.

    Built when missing (or with `force`), from the host images' cached bare root filesystem
    (debootstrap runs first only when that is missing too).
    """
    unknown = set(variants) - set(ALL_VM_IMAGES)
    if unknown:
        raise HostImageError(f"unknown VM image(s): {', '.join(sorted(unknown))}")
    hashes = vm_image_hashes()
    paths = {variant: vm_image_path(variant, hashes) for variant in ALL_VM_IMAGES}
    wanted = {v: paths[v] for v in ALL_VM_IMAGES if v in variants}
    if not force and all(p.exists() for p in wanted.values()):
        return wanted
    cache = cache_dir()
    with locked(cache, log):
        # Whoever held the lock before us may have built them meanwhile.
        needed = [v for v in wanted if force or not paths[v].exists()]
        if needed:
            _build(cache, needed, paths, force=force, log=log)
    return wanted


def check_can_build() -> None:
    if os.geteuid() != 0:
        raise HostImageError(
            "building the VM base image needs root (debootstrap and chroot): "
            "run `manage.py build_vm_image` once as root"
        )
    for tool, package in BUILD_TOOLS.items():
        if not shutil.which(tool):
            raise HostImageError(f"{tool} not found: apt-get install -y {package}")
    if not (GRUB_DIR / "boot.img").exists():
        raise HostImageError(f"no GRUB boot image in {GRUB_DIR}: apt-get install -y grub-pc-bin")


def _build(cache: Path, needed: list[str], paths: dict[str, Path], *, force: bool, log: Log):
    check_can_build()
    tarball = ensure_rootfs_tarballs(
        cache, [BARE_HOST_IMAGE], rootfs_hashes(), force=False, log=log
    )[BARE_HOST_IMAGE]
    build_log = cache / "build.log"
    build_log.write_text("")
    with workdir(cache) as work:
        rootfs = work / "rootfs"
        rootfs.mkdir()
        log(f"unpacking {tarball.name}")
        run(["tar", "-C", rootfs, "--numeric-owner", "-xpf", tarball], build_log)
        started = time.monotonic()
        log(f"installing {' '.join(VM_PACKAGES)} (log: {build_log})")
        _configure_vm(rootfs, build_log)
        log(f"installed in {time.monotonic() - started:.0f}s")
        if BARE_VM_IMAGE in needed:
            _write_disk(rootfs, work, paths[BARE_VM_IMAGE], build_log, log)
        if VM_IMAGE in needed:
            started = time.monotonic()
            log(f"installing {' '.join(DOCKER_PACKAGES)}")
            add_docker(rootfs, build_log)
            _private_dev_chroot(rootfs, CLEAN_APT, build_log)
            log(f"installed in {time.monotonic() - started:.0f}s")
            _write_disk(rootfs, work, paths[VM_IMAGE], build_log, log)
    current = {p.name for p in paths.values()}
    for old in cache.glob("vm-*.qcow2"):
        if old.name not in current:
            log(f"removing outdated {old.name}")
            old.unlink()


def _configure_vm(rootfs: Path, build_log: Path) -> None:
    for rel, content in VM_FILES.items():
        path = rootfs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    _private_dev_chroot(
        rootfs,
        "apt-get update -q\n"
        "apt-get install -q -y --no-install-recommends " + " ".join(VM_PACKAGES) + "\n"
        f"systemctl unmask {' '.join(VM_UNMASKED_UNITS)}\n" + CLEAN_APT,
        build_log,
    )
    # Package scripts may have made host keys; each VM makes its own at first boot.
    for path in rootfs.glob("etc/ssh/ssh_host_*"):
        path.unlink()


def _private_dev_chroot(rootfs: Path, script: str, build_log: Path) -> None:
    """rootfs.chroot with a /dev of its own: udev's package script applies its device
    permissions to /dev (/dev/kvm to *its* kvm group id), which must not be the host's."""
    nodes = {"null": "1 3", "zero": "1 5", "full": "1 7", "random": "1 8", "urandom": "1 9"}
    setup = (
        'mount -t proc proc "$1/proc" && mount -t tmpfs -o mode=0755,nosuid dev "$1/dev" && '
        + " && ".join(f'mknod -m 666 "$1/dev/{n}" c {mm}' for n, mm in nodes.items())
        + ' && ln -s /proc/self/fd "$1/dev/fd" && cp /etc/resolv.conf "$1/etc/resolv.conf" && '
        'exec env -i $2 chroot "$1" /bin/sh -euxc "$3"'
    )
    env = " ".join(f"{k}={v}" for k, v in CHROOT_ENV.items())
    unshare = ["unshare", "--mount", "--propagation", "private"]
    run([*unshare, "sh", "-ec", setup, "sh", rootfs, env, script], build_log)
    (rootfs / "etc/resolv.conf").write_text("")


def _write_disk(rootfs: Path, work: Path, image: Path, build_log: Path, log: Log) -> None:
    started = time.monotonic()
    raw = work / "disk.raw"
    raw.unlink(missing_ok=True)
    # The file system at 1 MiB into the file: mke2fs writes it there, no loop device needed.
    mkfs = ["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-E", f"offset={ALIGN}", "-d", rootfs]
    run([*mkfs, raw, f"{ROOT_MIB}M"], build_log)
    core = work / "core.img"
    mkimage = ["grub-mkimage", "-O", "i386-pc", "-d", GRUB_DIR, "-p", GRUB_PREFIX, "-o", core]
    run([*mkimage, *GRUB_MODULES], build_log)
    _write_mbr(raw, (GRUB_DIR / "boot.img").read_bytes(), core.read_bytes())
    partial = image.with_suffix(".partial")
    run(["qemu-img", "convert", "-O", "qcow2", raw, partial], build_log)
    partial.rename(image)
    raw.unlink()
    size = image.stat().st_size / 2**20
    log(f"wrote {image.name} ({size:.0f} MiB) in {time.monotonic() - started:.0f}s")


def _write_mbr(raw: Path, boot_img: bytes, core_img: bytes) -> None:
    """What grub-install writes on a BIOS disk: GRUB's boot sector (it loads sector 1) with a
    partition table, and the core image in the gap before the first partition. grub-mkimage
    already points the core image's block list at the sectors that follow it."""
    if len(core_img) > ALIGN - 512:
        raise HostImageError(f"GRUB's core image ({len(core_img)} bytes) does not fit in 1 MiB")
    first = ALIGN // 512
    sectors = raw.stat().st_size // 512 - first
    # Bootable, Linux (0x83), CHS fields saying "use LBA".
    entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", first, sectors)
    with raw.open("r+b") as disk:
        disk.write(boot_img[:440] + b"DDSH\0\0" + entry + bytes(48) + b"\x55\xaa")
        disk.write(core_img)


def _digest(recipe: object) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


# -- a user's own image ------------------------------------------------------------------


def image_format(path: Path) -> str:
    """qcow2 or raw, from the file's first bytes (as qemu-img probes it)."""
    with path.open("rb") as f:
        return "qcow2" if f.read(4) == b"QFI\xfb" else "raw"


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def fetch_image(source: str, log: Log = print) -> Path:
    """A user's cloud image as a local file: a path in the image folder as it is, an
    http(s) URL downloaded once into the cache (by the URL's hash); see imagecheck.py."""
    if not source.startswith(("http://", "https://")):
        return local_image(source)
    name = Path(urllib.parse.urlsplit(source).path).name or "image"
    target = cache_dir() / "images" / f"{hashlib.sha256(source.encode()).hexdigest()[:16]}-{name}"
    if target.exists():
        log(f"Using {source} downloaded before ({target})")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    download(source, target, log)
    return target
