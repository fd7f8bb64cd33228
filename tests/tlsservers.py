"""Real TLS listeners for error tests: one presenting a certificate the dashboard's CA did not
sign, one refusing the dashboard's client certificate. Python's ssl on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from machines.models import CertificateAuthority, Machine
from machines.pki import certs


def _pem_files(folder: Path, cert_pem: str, key_pem: str) -> tuple[str, str]:
    cert, key = folder / "server.pem", folder / "server-key.pem"
    cert.write_text(cert_pem)
    key.write_text(key_pem)
    return str(cert), str(key)


def other_ca() -> CertificateAuthority:
    """A CA that is not the dashboard's (its key in the row, to sign with)."""
    cert, key = certs.new_ca_cert("Someone else's CA")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return CertificateAuthority(name="other", cert=certs._cert_pem(cert), key=key_pem)


class TLSListener:
    """Accepts TLS on 127.0.0.1 with a server certificate signed by `server_ca`; with
    `client_ca`, asks for a client certificate that CA signed (and refuses any other)."""

    def __init__(
        self, folder: Path, server_ca: CertificateAuthority, client_ca: str | None = None
    ) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        host = Machine(name="tls-test", ip="127.0.0.1")
        certs.issue_server_cert(host, server_ca)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*_pem_files(folder, host.tls_server_cert, host.tls_server_key))
        if client_ca:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(cadata=client_ca)
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(raw,), daemon=True).start()

    def _handshake(self, raw: socket.socket) -> None:
        with contextlib.suppress(OSError), self.context.wrap_socket(raw, server_side=True) as tls:
            tls.recv(1024)
        raw.close()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
