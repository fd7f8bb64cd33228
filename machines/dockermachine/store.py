"""Reading a docker-machine store without reading anything else.

A store may come from anyone (copied from another user, unpacked from an archive), and what
is read from it ends up as key material that operators download. So: every file is looked
up by the store's own layout (`certs/FILE`, `machines/NAME/FILE`), whatever absolute path
config.json records (a store copied from /home/alice still works, a path like /etc/shadow
or one with '..' is refused); no symbolic link is followed, anywhere below the store; only
regular files are read; every key must be a private key matching its certificate.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from machines.lib.keys import load_pem_private_key

MAX_FILE_SIZE = 1 << 20  # config.json and PEM files are a few KB


class Refused(Exception):
    """This machine of the store cannot be imported; the message says why, in one sentence."""


def shown(text: str) -> str:
    """A name from the store as it can be printed (no control characters reach the terminal)."""
    return text if text.isprintable() else repr(text)


def store_relative(recorded: str, what: str) -> tuple[str, ...]:
    """Where a path recorded in config.json lies in this store, by docker-machine's layout."""
    if not isinstance(recorded, str) or "\0" in recorded:
        raise Refused(f"its {what} path is not a path")
    parts = [p for p in re.split(r"[\\/]+", recorded) if p not in ("", ".")]
    if ".." in parts:
        raise Refused(f"its {what} path {shown(recorded)} goes up with '..'")
    if len(parts) >= 2 and parts[-2] == "certs":
        return ("certs", parts[-1])
    if len(parts) >= 3 and parts[-3] == "machines":
        return tuple(parts[-3:])
    raise Refused(
        f"its {what} path {shown(recorded)} is outside the store (not in its certs/ or "
        "machines/ folder)"
    )


class Store:
    def __init__(self, root: Path) -> None:
        # The folder the user named (a symbolic link to it included) is trusted; what it holds
        # is not.
        self.root = root.expanduser().resolve()

    def path(self, rel: tuple[str, ...], what: str) -> Path | None:
        """The file at `rel` below the store, None if there is none; Refused if a part of the
        way is a symbolic link or it leads out of the store."""
        path = self.root
        for i, part in enumerate(rel):
            if part in ("", ".", "..") or "/" in part or "\0" in part:
                raise Refused(f"its {what} path has a part {shown(part)} that is not a name")
            path = path / part
            if path.is_symlink():
                where = "/".join(rel[: i + 1])
                raise Refused(f"its {what} ({shown(where)}) is a symbolic link")
            if not os.path.lexists(path):
                return None
        if not path.resolve().is_relative_to(self.root):
            raise Refused(f"its {what} lies outside the store")
        return path

    def locate(self, folder: str, recorded, what: str, default: str) -> Path | None:
        """A machine's file where config.json says (mapped into the store), else by its usual
        name in the machine's folder, then in certs/."""
        candidates = [store_relative(recorded, what)] if recorded else []
        candidates += [("machines", folder, default), ("certs", default)]
        for rel in candidates:
            if (path := self.path(rel, what)) is not None:
                return path
        return None

    def read(self, path: Path, what: str) -> str:
        """The text of a regular file, opened without following a link (even one made after
        the checks above)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            raise Refused(f"its {what} cannot be read ({e.strerror})") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise Refused(f"its {what} is not a regular file")
            if info.st_size > MAX_FILE_SIZE:
                raise Refused(f"its {what} is larger than {MAX_FILE_SIZE} bytes")
            data = f.read(MAX_FILE_SIZE + 1)
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise Refused(f"its {what} is not text") from None


# While a store is imported: what each file's text parsed to (the store's CA, client
# certificate and key are in every machine's folder; an RSA key takes milliseconds to load
# and check). Only during import_store, then forgotten: parsed keys do not linger.
_parsed: dict | None = None


@contextlib.contextmanager
def parse_cache() -> Iterator[None]:
    global _parsed
    _parsed = {}
    try:
        yield
    finally:
        _parsed = None


def parsed(kind: str, text: str, parse: Callable[[str], object]):
    """parse(text), once per text while a parse_cache is open (failures are not kept)."""
    if _parsed is None:
        return parse(text)
    if (kind, text) not in _parsed:
        _parsed[kind, text] = parse(text)
    return _parsed[kind, text]


def certificate(text: str, what: str) -> x509.Certificate:
    try:
        return parsed("cert", text, lambda t: x509.load_pem_x509_certificate(t.encode()))
    except ValueError:
        raise Refused(f"its {what} is not a PEM certificate") from None


def private_key(text: str, what: str):
    try:
        return parsed("key", text, lambda t: load_pem_private_key(t.encode()))
    except TypeError:
        raise Refused(f"its {what} is protected by a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise Refused(f"its {what} is not a PEM private key") from None


def _spki(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_pair(key, cert: x509.Certificate, what: str) -> None:
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise Refused(f"its {what} key does not match its {what} certificate")


def check_issued(cert: x509.Certificate, ca: x509.Certificate, what: str) -> None:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise Refused(f"its {what} certificate was not issued by its CA") from None


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key) -> str:
    """Re-written from the parsed key: only key material is stored, whatever else the file
    held around it."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class TLSFiles:
    ca: str
    ca_key: str  # "" when the store does not hold the CA's key
    client_cert: str
    client_key: str
    server_cert: str  # "" when the machine has none
    server_key: str


# (config.json's AuthOptions key, what it is, the file's usual name)
TLS_PATHS = {
    "ca": ("CaCertPath", "CA certificate", "ca.pem"),
    "ca_key": ("CaPrivateKeyPath", "CA key", "ca-key.pem"),
    "client_cert": ("ClientCertPath", "client certificate", "cert.pem"),
    "client_key": ("ClientKeyPath", "client key", "key.pem"),
    "server_cert": ("ServerCertPath", "server certificate", "server.pem"),
    "server_key": ("ServerKeyPath", "server key", "server-key.pem"),
}


def read_tls(store: Store, folder: str, auth: dict) -> TLSFiles:
    """A machine's certificates and keys, each checked against the others."""
    text: dict[str, str] = {}
    for field, (option, what, default) in TLS_PATHS.items():
        path = store.locate(folder, auth.get(option), what, default)
        text[field] = store.read(path, what) if path else ""
    missing = [TLS_PATHS[k][2] for k in ("ca", "client_cert", "client_key") if not text[k]]
    if missing:
        raise Refused(f"its TLS files are missing ({', '.join(missing)})")
    ca = certificate(text["ca"], "CA certificate")
    client = certificate(text["client_cert"], "client certificate")
    client_key = private_key(text["client_key"], "client key")
    check_pair(client_key, client, "client")
    check_issued(client, ca, "client")
    ca_key = server_key = None
    if text["ca_key"]:
        ca_key = private_key(text["ca_key"], "CA key")
        check_pair(ca_key, ca, "CA")
    server = certificate(text["server_cert"], "server certificate") if text["server_cert"] else None
    if text["server_key"]:
        server_key = private_key(text["server_key"], "server key")
        if server is None:
            raise Refused("it has a server key but no server certificate")
    if server is not None:
        if server_key is None:
            raise Refused("it has a server certificate but no server key")
        check_pair(server_key, server, "server")
        check_issued(server, ca, "server")
    return TLSFiles(
        ca=cert_pem(ca),
        ca_key=key_pem(ca_key) if ca_key else "",
        client_cert=cert_pem(client),
        client_key=key_pem(client_key),
        server_cert=cert_pem(server) if server else "",
        server_key=key_pem(server_key) if server_key else "",
    )


def store_client(store: Store) -> tuple[x509.Certificate, str, str] | None:
    """The store's own client certificate and key (certs/), if they are there and match:
    the client certificate of the store's CA, whichever machine is imported first."""
    try:
        cert_path = store.path(("certs", "cert.pem"), "client certificate")
        key_path = store.path(("certs", "key.pem"), "client key")
        if cert_path is None or key_path is None:
            return None
        cert = certificate(store.read(cert_path, "client certificate"), "client certificate")
        key = private_key(store.read(key_path, "client key"), "client key")
        check_pair(key, cert, "client")
    except Refused:
        return None
    return cert, cert_pem(cert), key_pem(key)
