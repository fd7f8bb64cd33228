"""Docker SDK clients for engines: unix sockets, ssh://, and tcp only with TLS client certs."""

from __future__ import annotations

import functools
import http.client
import json
import os
import socket
import ssl
from typing import TYPE_CHECKING

import docker
import requests.adapters
from cryptography import x509
from urllib3.util.ssl_ import create_urllib3_context

from machines.pki.tlsfiles import tls_files
from machines.validation import parse_engine_url

if TYPE_CHECKING:
    from machines.models import Machine

DEFAULT_LOCAL = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 10
# Docker API 1.41 (Engine 20.10, Debian 12's) is the oldest we meet; pinning it also keeps the
# SDK from calling the daemon in the constructor just to ask its version.
API_VERSION = "1.41"


class EngineError(Exception):
    pass


def default_engine_url() -> str:
    return os.getenv("DOCKER_HOST") or DEFAULT_LOCAL


def _is_legacy_ca(ca_pem: str) -> bool:
    """A CA made without key identifiers, as docker-machine's (Go before 1.15) were."""
    cert = x509.load_pem_x509_certificate(ca_pem.encode())
    try:
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return True
    return False


class _LegacyCAAdapter(requests.adapters.HTTPAdapter):
    """Full verification (chain, signature, expiry, host name) without Python 3.13's strict
    RFC 5280 profile, which refuses certificates lacking key identifiers: the engines that
    docker-machine provisioned. Only used for such a CA; ours carry every extension."""

    def init_poolmanager(self, *args, **kwargs):
        context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED, verify_flags=0)
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        kwargs["ssl_context"] = context
        return super().init_poolmanager(*args, **kwargs)


def client(
    url: str,
    *,
    ca: str = "",
    cert: str = "",
    key: str = "",
    timeout: float = DEFAULT_TIMEOUT,
) -> docker.DockerClient:
    """A client for one engine. One client per thread: it is a requests Session."""
    url = url or default_engine_url()
    if url.startswith("tcp://") or url.startswith("https://"):
        if not (ca and cert and key):
            raise EngineError(
                f"{url}: engines over TCP are reached only with TLS client certificates "
                "(give the CA, the client certificate and its key)"
            )
        ca_path, cert_path, key_path = tls_files(ca, cert, key)
        tls = docker.tls.TLSConfig(client_cert=(cert_path, key_path), ca_cert=ca_path, verify=True)
        c = docker.DockerClient(base_url=url, tls=tls, timeout=timeout, version=API_VERSION)
        if _is_legacy_ca(ca):
            c.api.mount("https://", _LegacyCAAdapter())
    elif url.startswith("unix://") or url.startswith("ssh://"):
        c = docker.DockerClient(
            base_url=url, timeout=timeout, version=API_VERSION, use_ssh_client=False
        )
    else:
        raise EngineError(f"Unsupported engine URL {url!r} (use unix://, ssh:// or tcp://)")
    # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would otherwise replace our CA with the system's.
    c.api.trust_env = False
    return c


def client_for_machine(
    machine: Machine, *, timeout: float = DEFAULT_TIMEOUT
) -> docker.DockerClient:
    """A client for a machine's engine: over TCP with the client certificate of the CA that
    signed the engine's server certificate (so a machine still on a retired CA stays reachable)."""
    url = machine.url
    if url.startswith(("tcp://", "https://")):
        from machines.pki.certs import ca_for_machine

        ca = ca_for_machine(machine)
        return client(url, ca=ca.cert, cert=ca.client_cert, key=ca.client_key, timeout=timeout)
    return client(url, timeout=timeout)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@functools.lru_cache(maxsize=256)
def tls_context(ca: str, cert: str, key: str, tls12: bool = False) -> ssl.SSLContext:
    """A client context with the engine's CA and our client certificate (one per credential:
    loading them costs more than the ping). Strict X.509 checks are off only for the CAs
    docker-machine made, as _LegacyCAAdapter does for the SDK."""
    ca_path, cert_path, key_path = tls_files(ca, cert, key)
    context = ssl.create_default_context(cafile=ca_path)
    context.load_cert_chain(cert_path, key_path)
    if _is_legacy_ca(ca):
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def ping(url: str, *, ca: str = "", cert: str = "", key: str = "", timeout: float = 3) -> dict:
    """The engine's /version, for health checks: one small HTTP request over a unix socket or
    TLS, without the SDK's client (which costs more to make than the request itself). Raises
    what the socket raises; ssh:// engines go through the SDK."""
    if url.startswith("ssh://"):
        sdk = client(url, timeout=timeout)
        try:
            return sdk.version()
        finally:
            sdk.close()
    if url.startswith("unix://"):
        return _get_version(_UnixHTTPConnection(url[len("unix://") :], timeout))
    if not url.startswith(("tcp://", "https://")):
        raise EngineError(f"Unsupported engine URL {url!r} (use unix://, ssh:// or tcp://)")
    if not (ca and cert and key):
        raise EngineError(f"{url}: engines over TCP are reached only with TLS client certificates")
    target = parse_engine_url(url.replace("https://", "tcp://", 1))
    host, port = target.host.strip("[]"), target.port
    try:
        context = tls_context(ca, cert, key)
        return _get_version(
            http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        )
    except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, http.client.RemoteDisconnected):
        # With TLS 1.3 an engine refusing our client certificate says so after the handshake,
        # often as a bare reset; with TLS 1.2 it says why during it: ask again to know.
        context = tls_context(ca, cert, key, tls12=True)
        return _get_version(
            http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        )


def _get_version(conn: http.client.HTTPConnection) -> dict:
    try:
        conn.request("GET", f"/v{API_VERSION}/version")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise EngineError(f"the engine answered {response.status} {response.reason} to /version")
    return json.loads(body)
