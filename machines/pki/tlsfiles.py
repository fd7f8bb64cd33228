"""Engines' TLS credentials as files: the Docker SDK wants paths, so each CA, certificate
and key is written once into a private folder named by its content, and pruned when no CA
row holds it any more."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings


def cache_folder() -> Path:
    folder = Path(settings.DATA_DIR) / "tls-cache"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # mkdir's mode does not apply to a folder that already existed
    return folder


def digest(ca: str, cert: str, key: str) -> str:
    return hashlib.sha256("\0".join((ca, cert, key)).encode()).hexdigest()[:16]


def tls_files(ca: str, cert: str, key: str) -> tuple[str, str, str]:
    """The SDK wants file paths: keep them in a private folder named by their content."""
    folder = cache_folder() / digest(ca, cert, key)
    folder.mkdir(mode=0o700, exist_ok=True)
    paths = []
    for name, pem in (("ca.pem", ca), ("cert.pem", cert), ("key.pem", key)):
        path = folder / name
        if not path.exists():
            # Written whole then renamed: another process may be reading the same entry.
            partial = folder / f".{name}.{os.getpid()}.{threading.get_ident()}"
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(pem)
            partial.replace(path)
        paths.append(str(path))
    return paths[0], paths[1], paths[2]


def prune(live: Iterable[tuple[str, str, str]]) -> int:
    """Delete the cache entries of credentials that are not live (keys of rotated CAs stay on
    disk otherwise) and tighten the modes of the others; how many entries were deleted."""
    folder = cache_folder()
    keep = {digest(*credential) for credential in live}
    deleted = 0
    for entry in folder.iterdir():
        if entry.name in keep and entry.is_dir() and not entry.is_symlink():
            entry.chmod(0o700)
            for file in entry.iterdir():
                if file.is_file() and not file.is_symlink():
                    file.chmod(0o600)
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        deleted += 1
    return deleted
