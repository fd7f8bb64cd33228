"""A user's VM image, checked before the hypervisor sees it.

- A local image comes from one folder (DOCKERDASH_KVM_IMAGE_DIR) and nowhere else: the
  dashboard's own keys, database and users' SSH keys are readable files too. The refusal
  reads the same whether or not the path exists.
- A URL is fetched only from a public address: loopback, private, link-local (the cloud
  metadata service) and other reserved addresses are refused, and so is a redirect to
  another host, unless its origin is a mirror the administrator allows
  (DOCKERDASH_KVM_IMAGE_MIRRORS). The name is checked before the download, and the address
  the download connects to is checked again before a byte is sent (a name that resolves
  elsewhere the second time, DNS rebinding, is refused).
- The file is inspected with `qemu-img info --output json`: a backing file, an external data
  file or a `json:` name would make the hypervisor open another file on its host.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from machines.lib.rootfs import HostImageError

MAX_REDIRECTS = 5
FORMATS = ("qcow2", "raw")


def local_image(source: str) -> Path:
    """The file for a local image path, if it lies in the image folder (symlinks resolved)."""
    folder = Path(settings.KVM_IMAGE_DIR).resolve()
    refusal = HostImageError(
        f"The image {source} is not a file in the image folder {folder} "
        "(DOCKERDASH_KVM_IMAGE_DIR): copy it there first"
    )
    path = Path(source)
    if not path.is_absolute():
        path = folder / path
    try:
        path = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise refusal from None
    if not path.is_relative_to(folder) or not path.is_file():
        raise refusal
    return path


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _mirror(url: str) -> bool:
    return _origin(url) in {_origin(m) for m in settings.KVM_IMAGE_MIRRORS}


def _refused(url: str, host: str) -> HostImageError:
    return HostImageError(
        f"Refused to download {url}: {host} is a loopback, private or link-local address (an "
        "administrator can allow a mirror with DOCKERDASH_KVM_IMAGE_MIRRORS)"
    )


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.is_global and not ip.is_multicast


def check_address(url: str) -> None:
    """Refuse a URL whose host resolves to a non-public address (unless it is a mirror)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HostImageError(f"{url} is not an http(s) URL")
    if _mirror(url):
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as e:
        raise HostImageError(f"Downloading {url} failed: {parts.hostname}: {e}") from None
    if not all(_public(info[4][0]) for info in infos):
        raise _refused(url, parts.hostname)


def _session():
    """A requests session whose every connection checks the address it reached before it
    sends anything (the same rule as check_address, on the address actually used)."""
    import requests
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Checked:
        scheme = "http"

        def _new_conn(self):
            sock = super()._new_conn()
            peer = sock.getpeername()[0]
            origin = f"{self.scheme}://{self.host}:{self.port}"
            if not _mirror(origin) and not _public(peer):
                sock.close()
                raise HostImageError(
                    f"Refused to download from {self.host}: it was checked as a public address "
                    f"but {self.host} connected to {peer}, a loopback, private or link-local one"
                )
            return sock

    class CheckedHTTP(Checked, HTTPConnection):
        pass

    class CheckedHTTPS(Checked, HTTPSConnection):
        scheme = "https"

    class Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {
                "http": type("Pool", (HTTPConnectionPool,), {"ConnectionCls": CheckedHTTP}),
                "https": type("SPool", (HTTPSConnectionPool,), {"ConnectionCls": CheckedHTTPS}),
            }

    session = requests.Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, Adapter())
    return session


def open_download(url: str):
    """A streaming response for `url`, following at most MAX_REDIRECTS redirects, each on the
    same origin or to an allowed mirror, every address checked."""

    current, session = url, _session()
    for _ in range(MAX_REDIRECTS + 1):
        check_address(current)
        answer = session.get(current, stream=True, timeout=30, allow_redirects=False)
        if not answer.is_redirect:
            answer.raise_for_status()
            return answer
        target = urllib.parse.urljoin(current, answer.headers.get("Location", ""))
        answer.close()
        if _origin(target) != _origin(current) and not _mirror(target):
            raise HostImageError(f"Refused to download {url}: it redirects to another host")
        current = target
    raise HostImageError(f"Refused to download {url}: more than {MAX_REDIRECTS} redirects")


def download(url: str, target: Path, log: Callable[[str], None]) -> None:
    import requests

    partial = target.with_name(target.name + ".partial")
    started, done = time.monotonic(), 0
    try:
        with open_download(url) as answer:
            total = int(answer.headers.get("Content-Length") or 0)
            next_report = 0.0
            with partial.open("wb") as out:
                for chunk in answer.iter_content(1 << 20):
                    out.write(chunk)
                    done += len(chunk)
                    if total and done / total >= next_report:
                        log(f"Downloading {url}: {done * 100 // total}% of {total >> 20} MiB")
                        next_report += 0.2
    except (requests.RequestException, OSError, HostImageError) as e:
        partial.unlink(missing_ok=True)
        if isinstance(e, HostImageError):
            raise
        raise HostImageError(f"Downloading {url} failed: {e}") from None
    partial.rename(target)
    log(f"Downloaded {done >> 20} MiB in {time.monotonic() - started:.0f}s")


def inspect_image(path: Path, shown: str) -> str:
    """The image's format (qcow2 or raw) from `qemu-img info`; HostImageError for an image
    that points at other files (backing file, external data file, json: name)."""
    try:
        done = subprocess.run(
            ["qemu-img", "info", "--output", "json", "--", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise HostImageError(
            "qemu-img is needed to check an image (apt-get install qemu-utils)"
        ) from None
    if done.returncode != 0:
        raise HostImageError(f"The image {shown} is not a disk image qemu-img can read")
    info = json.loads(done.stdout)
    data_file = (info.get("format-specific") or {}).get("data", {}).get("data-file")
    names = [info.get("filename", ""), info.get("backing-filename", ""), data_file or ""]
    if info.get("backing-filename") or info.get("full-backing-filename") or data_file:
        raise HostImageError(
            f"The image {shown} refers to another file (a backing file or an external data "
            "file): give a standalone image (qemu-img convert -O qcow2 IN OUT)"
        )
    if any(str(n).startswith("json:") for n in names):
        raise HostImageError(f"The image {shown} has a json: name")
    if info.get("format") not in FORMATS:
        raise HostImageError(f"The image {shown} is {info.get('format')}, not qcow2 or raw")
    return info["format"]
