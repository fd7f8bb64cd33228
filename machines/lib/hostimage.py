"""Build the Debian images that host containers boot: systemd as PID 1, sshd, optionally Docker.

No registry is reachable where the tests run, so the images come from `debootstrap` and
`docker import`. Each image carries a label with the hash of its recipe; an image whose label
matches is reused, and the packed root filesystems are cached on disk by the same hash, so a fresh
engine data root gets its images back in seconds without running debootstrap again.

Plain Python (no Django) so that test fixtures can call `ensure_host_images` directly.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import io
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from machines.lib.rootfs import (  # the build steps, by the names their recipe hash includes
    BARE_PACKAGES,
    DOCKER_PACKAGES,
    ENABLED_UNITS,
    IMAGE_CHANGES,
    MASKED_UNITS,
    MIRROR,
    PACK_EXCLUDES,
    REMOVED_GLOBS,
    REMOVED_PATHS,
    ROOTFS_FILES,
    STOP_SIGNAL,
    SUITE,
    HostImageError,
    Log,
    add_docker,
    check_can_build,
    chroot,
    configure_rootfs,
    debootstrap,
    pack,
    run,
    workdir,
)

if TYPE_CHECKING:
    import docker

HOST_IMAGE = "dockerdash/host:bookworm"
BARE_HOST_IMAGE = "dockerdash/host:bookworm-bare"
ALL_IMAGES = (BARE_HOST_IMAGE, HOST_IMAGE)
RECIPE_LABEL = "io.dockerdash.recipe"


def cache_dir() -> Path:
    return Path(os.environ.get("DOCKERDASH_CACHE_DIR", "/var/cache/dockerdash"))


def ensure_host_images(
    client: docker.DockerClient,
    *,
    force: bool = False,
    log: Log = print,
    images: Iterable[str] = ALL_IMAGES,
) -> dict[str, str]:
    """Make sure the host images exist on the client's engine; return tag -> image id.

    An image whose recipe label matches is kept; otherwise it is imported from the cached root
    filesystem, which is built first when it is missing too. `force` rebuilds everything,
    debootstrap included.
    """
    requested = set(images)
    wanted = [tag for tag in ALL_IMAGES if tag in requested]
    unknown = requested - set(ALL_IMAGES)
    if unknown:
        raise HostImageError(f"unknown host image(s): {', '.join(sorted(unknown))}")
    hashes = recipe_hashes()
    result: dict[str, str] = {}
    missing: list[str] = []
    for tag in wanted:
        image_id = None if force else _current_image(client, tag, hashes[tag])
        if image_id:
            log(f"{tag}: up to date ({_short(image_id)})")
            result[tag] = image_id
        else:
            missing.append(tag)
    if not missing:
        return result

    cache = cache_dir()
    with locked(cache, log):
        if not force:
            # Whoever held the lock before us may have imported them meanwhile.
            for tag in list(missing):
                if image_id := _current_image(client, tag, hashes[tag]):
                    result[tag] = image_id
                    missing.remove(tag)
        tarballs = ensure_rootfs_tarballs(cache, missing, rootfs_hashes(), force=force, log=log)
        for tag in missing:
            result[tag] = _import(client, tag, tarballs[tag], hashes[tag], log)
    return {tag: result[tag] for tag in wanted}


def recipe_hashes() -> dict[str, str]:
    """Tag -> hash of everything that goes into the image: its root filesystem and config."""
    return {
        tag: _digest(
            {
                "rootfs": rootfs,
                "config": (IMAGE_CHANGES, STOP_SIGNAL),
                "code": inspect.getsource(_import),
            }
        )
        for tag, rootfs in rootfs_hashes().items()
    }


def rootfs_hashes() -> dict[str, str]:
    """Tag -> hash of the recipe of its root filesystem: packages, files, units, build code."""
    bare = _digest(
        {
            "suite": SUITE,
            "mirror": MIRROR,
            "packages": BARE_PACKAGES,
            "files": ROOTFS_FILES,
            "enabled": ENABLED_UNITS,
            "masked": MASKED_UNITS,
            "removed": (REMOVED_PATHS, REMOVED_GLOBS),
            "excludes": PACK_EXCLUDES,
            "code": [inspect.getsource(f) for f in (debootstrap, configure_rootfs, pack, chroot)],
        }
    )
    with_docker = _digest(
        {"base": bare, "packages": DOCKER_PACKAGES, "code": inspect.getsource(add_docker)}
    )
    return {BARE_HOST_IMAGE: bare, HOST_IMAGE: with_docker}


def _digest(recipe: object) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _current_image(client: docker.DockerClient, tag: str, recipe: str) -> str | None:
    import docker.errors

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    labels = image.attrs.get("Config", {}).get("Labels") or {}
    return image.id if labels.get(RECIPE_LABEL) == recipe else None


@contextlib.contextmanager
def locked(cache: Path, log: Log) -> Iterator[None]:
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = (cache / "build.lock").open("w")
    except OSError as error:
        raise HostImageError(f"cannot use the cache dir {cache}: {error.strerror}") from error
    # Parallel test workers may all ask for the images at once; one builds, the others wait.
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another build is running, waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _tarball(cache: Path, tag: str, recipe: str) -> Path:
    variant = tag.rpartition(":")[2]
    return cache / f"rootfs-{variant}-{recipe}.tar"


def ensure_rootfs_tarballs(
    cache: Path, tags: list[str], hashes: dict[str, str], *, force: bool, log: Log
) -> dict[str, Path]:
    tarballs = {tag: _tarball(cache, tag, hashes[tag]) for tag in ALL_IMAGES}
    needed = [tag for tag in tags if force or not tarballs[tag].exists()]
    for tag in tags:
        if tag not in needed:
            log(f"{tag}: root filesystem cached ({tarballs[tag].name})")
    if not needed:
        return tarballs

    check_can_build()
    bare_tar = tarballs[BARE_HOST_IMAGE]
    build_log = cache / "build.log"
    build_log.write_text("")
    with workdir(cache) as work:
        rootfs = work / "rootfs"
        if force or not bare_tar.exists():
            log(f"debootstrap {SUITE} from {MIRROR} (log: {build_log})")
            started = time.monotonic()
            debootstrap(rootfs, build_log)
            log(f"debootstrap done in {time.monotonic() - started:.0f}s")
            started = time.monotonic()
            configure_rootfs(rootfs, build_log)
            log(f"configured (upgrades, sshd, units) in {time.monotonic() - started:.0f}s")
            pack(rootfs, bare_tar, log)
        if HOST_IMAGE in needed:
            if not rootfs.exists():
                log(f"unpacking {bare_tar.name}")
                rootfs.mkdir()
                run(["tar", "-C", rootfs, "--numeric-owner", "-xpf", bare_tar], build_log)
            log(f"installing {' '.join(DOCKER_PACKAGES)}")
            started = time.monotonic()
            add_docker(rootfs, build_log)
            log(f"installed in {time.monotonic() - started:.0f}s")
            pack(rootfs, tarballs[HOST_IMAGE], log)
    _prune_tarballs(cache, set(tarballs.values()), log)
    return tarballs


def _prune_tarballs(cache: Path, keep: set[Path], log: Log) -> None:
    for path in cache.glob("rootfs-*.tar"):
        if path not in keep:
            log(f"removing outdated {path.name}")
            path.unlink()


def _import(client: docker.DockerClient, tag: str, tarball: Path, recipe: str, log: Log) -> str:
    import docker.errors

    started = time.monotonic()
    log(f"{tag}: importing {tarball.name}")
    changes = [*IMAGE_CHANGES, f"LABEL {RECIPE_LABEL}={recipe}"]
    answer = client.api.import_image(src=str(tarball), changes=changes)
    imported = json.loads(answer.strip().splitlines()[-1])["status"]
    dockerfile = f"FROM {imported}\nSTOPSIGNAL {STOP_SIGNAL}\n"
    image, _ = client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, pull=False, rm=True, forcerm=True
    )
    log(f"{tag}: imported {_short(image.id)} in {time.monotonic() - started:.0f}s")
    # Earlier builds lost their tag now or before; each stays only while containers still use it.
    outdated = client.images.list(filters={"dangling": True, "label": RECIPE_LABEL})
    for old in outdated:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(old.id)
    return image.id
