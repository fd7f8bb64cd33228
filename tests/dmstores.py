"""docker-machine stores for import tests, laid out as docker-machine 0.16 writes them, with
config.json recording the paths of a store elsewhere (/home/alice/...), as in a store copied
from another user. Tests then change a machine's files or config.json to craft attacks."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

OLD = "/home/alice/.docker/machine"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(obj) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def spki(key_or_pem) -> bytes:
    """A private key's public half, to recognise it however its PEM was written."""
    key = key_or_pem
    if isinstance(key_or_pem, str):
        key = serialization.load_pem_private_key(key_or_pem.encode(), None)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def go_style_cert(org, public_key, issuer_org, issuer_key, *, ca=False, server=False, hosts=()):
    """A certificate as docker-machine (Go 1.12) made them: no key identifiers, O= only."""
    now = dt.datetime.now(dt.UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        key_encipherment=True,
        key_agreement=True,
        key_cert_sign=ca,
        content_commitment=False,
        data_encipherment=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, org)]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, issuer_org)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1080))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
    )
    if not ca:
        eku = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if hosts:
        names = [x509.IPAddress(ipaddress.ip_address(h)) for h in hosts]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class DockerMachineStore:
    """A store at `root` with its CA and client certificate in certs/."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.certs = root / "certs"
        self.certs.mkdir(parents=True)
        (root / "machines").mkdir()
        self.ca_key = new_key()
        self.ca = go_style_cert("alice", self.ca_key.public_key(), "alice", self.ca_key, ca=True)
        self.client_key = new_key()
        self.client = self.client_cert_for(self.client_key)
        for name, obj in [
            ("ca.pem", self.ca),
            ("ca-key.pem", self.ca_key),
            ("cert.pem", self.client),
            ("key.pem", self.client_key),
        ]:
            (self.certs / name).write_text(pem(obj))

    def client_cert_for(self, key) -> x509.Certificate:
        return go_style_cert("alice", key.public_key(), "alice", self.ca_key)

    def folder(self, name: str) -> Path:
        return self.root / "machines" / name

    def add(self, name: str, ip: str = "127.0.0.1", driver: str = "generic", **driver_cfg):
        """A machine's folder as docker-machine leaves it; returns its config (a dict that
        `write_config` saves after a test has changed it)."""
        folder = self.folder(name)
        folder.mkdir()
        server_key = new_key()
        server = go_style_cert(
            f"alice.{name}", server_key.public_key(), "alice", self.ca_key, server=True, hosts=[ip]
        )
        for fname in ("ca.pem", "cert.pem", "key.pem"):
            shutil.copy(self.certs / fname, folder / fname)
        (folder / "server.pem").write_text(pem(server))
        (folder / "server-key.pem").write_text(pem(server_key))
        (folder / "id_rsa").write_text(pem(new_key()))
        config = self._config(name, ip, driver, driver_cfg)
        self.write_config(name, config)
        return config

    def _config(self, name: str, ip: str, driver: str, driver_cfg: dict) -> dict:
        machine = f"{OLD}/machines/{name}"
        return {
            "ConfigVersion": 3,
            "Driver": {
                "IPAddress": ip,
                "MachineName": name,
                "SSHUser": "root",
                "SSHPort": 22,
                "SSHKeyPath": f"{machine}/id_rsa",
                "StorePath": OLD,
                "EnginePort": 2376,
                **driver_cfg,
            },
            "DriverName": driver,
            "HostOptions": {
                "EngineOptions": {
                    "ArbitraryFlags": [],
                    "Env": [],
                    "InsecureRegistry": [],
                    "Labels": ["env=lab"],
                    "StorageDriver": "",
                    "RegistryMirror": [],
                    "InstallURL": "https://get.docker.com",
                },
                "AuthOptions": {
                    "CertDir": f"{OLD}/certs",
                    "CaCertPath": f"{OLD}/certs/ca.pem",
                    "CaPrivateKeyPath": f"{OLD}/certs/ca-key.pem",
                    "ServerCertPath": f"{machine}/server.pem",
                    "ServerKeyPath": f"{machine}/server-key.pem",
                    "ClientKeyPath": f"{OLD}/certs/key.pem",
                    "ClientCertPath": f"{OLD}/certs/cert.pem",
                    "ServerCertSANs": [],
                    "StorePath": machine,
                },
            },
            "Name": name,
        }

    def write_config(self, name: str, config: dict) -> None:
        (self.folder(name) / "config.json").write_text(json.dumps(config, indent=4))
