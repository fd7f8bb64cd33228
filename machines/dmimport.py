"""Bring machines of a docker-machine store into dockerdash, certificates and all.

A store (~/.docker/machine) holds `certs/` (the CA and the client certificate) and
`machines/NAME/` (config.json, the machine's SSH key and its server certificate). Stores
are often copied from another user or host, so the absolute paths inside config.json may
not exist: every file is looked for where config.json says, then relative to the store.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from django.db import transaction
from django.utils import timezone

from .lib.ssh import public_key_of
from .models import CertificateAuthority, Driver, Machine

# docker-machine drivers that map to ours; any other is attached as a plain TLS engine.
DRIVERS = {"generic": "generic", "none": "none"}


class StoreError(Exception):
    pass


@dataclass
class Result:
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _find(store: Path, machine_dir: Path, recorded: str | None, *names: str) -> Path | None:
    """A file where config.json recorded it, else by its name in the machine's folder or
    the store's certs/ folder (in that order)."""
    candidates = []
    if recorded:
        candidates.append(Path(recorded))
        # The same file relative to the store, if the recorded path was under another store.
        parts = Path(recorded).parts
        for anchor in ("machines", "certs"):
            if anchor in parts:
                candidates.append(store.joinpath(*parts[parts.index(anchor) :]))
    for name in names:
        candidates += [machine_dir / name, store / "certs" / name]
    return next((p for p in candidates if p.is_file()), None)


def _read(path: Path | None) -> str:
    return path.read_text() if path else ""


def _not_after(pem: str):
    return x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc


def _store_ca(store: Path, ca_cert: str, ca_key: str, client_cert: str, client_key: str):
    """The store's CA and client certificate, kept as a CertificateAuthority of its own."""
    digest = hashlib.sha256(ca_cert.encode()).hexdigest()[:12]
    name = f"docker-machine-{digest}"
    ca, _ = CertificateAuthority.objects.update_or_create(
        name=name,
        defaults={
            "cert": ca_cert,
            # Without the CA's key dockerdash cannot issue with it; regenerate-certs then
            # moves the machine to the dashboard's own CA.
            "key": ca_key,
            "client_cert": client_cert,
            "client_key": client_key,
            "expires_at": _not_after(ca_cert),
            "client_expires_at": _not_after(client_cert),
        },
    )
    return ca


def import_store(store: Path, *, user=None, log=print) -> Result:
    store = store.expanduser()
    machines_dir = store / "machines"
    if not machines_dir.is_dir():
        raise StoreError(f"{store} is not a docker-machine store (no machines/ folder)")
    result = Result()
    for config_path in sorted(machines_dir.glob("*/config.json")):
        machine_dir = config_path.parent
        try:
            _import_one(store, machine_dir, config_path, result, user, log)
        except StoreError as e:
            result.skipped.append(machine_dir.name)
            log(f"{machine_dir.name}: skipped: {e}")
    return result


def _import_one(store, machine_dir, config_path, result, user, log) -> None:
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise StoreError(f"cannot read {config_path}: {e}") from None
    name = config.get("Name") or machine_dir.name
    if Machine.objects.filter(name=name).exists():
        raise StoreError("a machine of that name exists in dockerdash already")
    driver_cfg = config.get("Driver") or {}
    host_options = config.get("HostOptions") or {}
    auth = host_options.get("AuthOptions") or {}
    engine = host_options.get("EngineOptions") or {}
    kind = config.get("DriverName") or "none"

    files = {
        "ca": _find(store, machine_dir, auth.get("CaCertPath"), "ca.pem"),
        "ca_key": _find(store, machine_dir, auth.get("CaPrivateKeyPath"), "ca-key.pem"),
        "client_cert": _find(store, machine_dir, auth.get("ClientCertPath"), "cert.pem"),
        "client_key": _find(store, machine_dir, auth.get("ClientKeyPath"), "key.pem"),
        "server_cert": _find(store, machine_dir, auth.get("ServerCertPath"), "server.pem"),
        "server_key": _find(store, machine_dir, auth.get("ServerKeyPath"), "server-key.pem"),
    }
    missing = [k for k in ("ca", "client_cert", "client_key") if files[k] is None]
    if missing:
        raise StoreError(f"its TLS files are missing ({', '.join(missing)}.pem)")

    ip = driver_cfg.get("IPAddress") or ""
    port = int(driver_cfg.get("EnginePort") or 2376)
    url = driver_cfg.get("URL") or (f"tcp://{ip}:{port}" if ip else "")
    if not url:
        raise StoreError("config.json gives neither an IP address nor a URL")

    ssh_key_path = _find(store, machine_dir, driver_cfg.get("SSHKeyPath"), "id_rsa")
    private_key = _read(ssh_key_path)
    if private_key:
        try:
            public_key_of(private_key)
        except ValueError as e:
            log(f"{name}: its SSH key is not usable ({e}); SSH actions will need a new key")
            private_key = ""

    ours = DRIVERS.get(kind)
    with transaction.atomic():
        ca = _store_ca(
            store,
            _read(files["ca"]),
            _read(files["ca_key"]),
            _read(files["client_cert"]),
            _read(files["client_key"]),
        )
        driver = Driver.objects.get_or_create(
            name=ours or "none", defaults={"kind": ours or "none"}
        )[0]
        server_cert = _read(files["server_cert"])
        machine = Machine(
            name=name,
            driver=driver,
            ip=ip,
            engine_url=url,
            engine_port=port,
            ssh_user=driver_cfg.get("SSHUser") or "root",
            ssh_port=int(driver_cfg.get("SSHPort") or 22),
            ssh_private_key=private_key,
            engine_labels=engine.get("Labels") or [],
            engine_insecure_registries=engine.get("InsecureRegistry") or [],
            engine_registry_mirrors=engine.get("RegistryMirror") or [],
            engine_storage_driver=engine.get("StorageDriver") or "",
            engine_env=engine.get("Env") or [],
            engine_opts=engine.get("ArbitraryFlags") or [],
            engine_install_url=engine.get("InstallURL") or "",
            tls_san=auth.get("ServerCertSANs") or [],
            tls_server_cert=server_cert,
            tls_server_key=_read(files["server_key"]),
            tls_server_expires_at=_not_after(server_cert) if server_cert else None,
            driver_options={"imported_from": str(machine_dir), "docker_machine_driver": kind},
            created_by=user,
            created_at=timezone.now(),
        )
        if driver.kind == "none":
            machine.driver_options["url"] = url
        machine.full_clean(exclude=["engine_install_url"])
        machine.save()
    result.imported.append(name)
    note = (
        ""
        if ours
        else f" (its driver {kind!r} is not one of dockerdash's: imported as a plain TLS engine)"
    )
    log(f"{name}: imported, engine {url}, CA {ca.name}{note}")
    if ours == "generic":
        log(f"{name}: its SSH host key will be pinned on first contact (docker-machine kept none)")
    # Look at it now, so that `env` and the list know its state at once.
    from .runner import check_machine

    check_machine(machine)
    if machine.engine_reachable:
        log(f"{name}: {machine.get_state_display()}, Docker {machine.docker_version}")
    else:
        log(f"{name}: {machine.get_state_display()}; {machine.last_error or 'engine not reached'}")
