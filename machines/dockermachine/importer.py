"""Bring machines of a docker-machine store into dockerdash, certificates and all.

A store (~/.docker/machine) holds `certs/` (the CA and the client certificate) and
`machines/NAME/` (config.json, the machine's SSH key and its server certificate). Stores
are often copied from another user or host, so the absolute paths inside config.json may
not exist: every file is found by the store's own layout (see machines.dmstore, which also
makes sure nothing outside the store is read). Each machine goes through the model's
validation like one made in the dashboard; a machine that fails any check is refused with
its reason and the others are imported.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from machines.dockermachine.store import (
    Refused,
    Store,
    TLSFiles,
    check_issued,
    parse_cache,
    parsed,
    read_tls,
    shown,
    store_client,
)
from machines.drivers import for_docker_machine
from machines.lib.ssh import public_key_of
from machines.models import CertificateAuthority, Driver, Machine
from machines.operations.actions import create_machine
from machines.validation import one_line, parse_tag

# A progress line every this many machines (a store may hold a thousand).
PROGRESS_EVERY = 100


class StoreError(Exception):
    """The whole store cannot be read."""


@dataclass
class Result:
    imported: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, why)


def _not_after(pem: str):
    return x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc


def _store_ca(tls: TLSFiles, client: tuple | None) -> CertificateAuthority:
    """The store's CA and client certificate, kept as a CertificateAuthority of its own.

    Made once, by the first machine that uses it, and never changed by later ones: its client
    certificate is the store's own (certs/) when that one was issued by this CA, else the
    first machine's."""
    digest = hashlib.sha256(tls.ca.encode()).hexdigest()[:12]
    client_cert, client_key = tls.client_cert, tls.client_key
    if client is not None:
        try:
            check_issued(client[0], x509.load_pem_x509_certificate(tls.ca.encode()), "client")
        except Refused:
            pass  # the store's certs/ belong to another CA: this machine's own pair it is
        else:
            client_cert, client_key = client[1], client[2]
    ca, _ = CertificateAuthority.objects.get_or_create(
        name=f"docker-machine-{digest}",
        defaults={
            "cert": tls.ca,
            # Without the CA's key dockerdash cannot issue with it; regenerate-certs then
            # moves the machine to the dashboard's own CA.
            "key": tls.ca_key,
            "client_cert": client_cert,
            "client_key": client_key,
            "expires_at": _not_after(tls.ca),
            "client_expires_at": _not_after(client_cert),
        },
    )
    return ca


def import_store(
    store_path: Path, *, user=None, log=print, tags_from_labels: bool = False
) -> Result:
    store = Store(store_path)
    machines_dir = store.root / "machines"
    if machines_dir.is_symlink() or not machines_dir.is_dir():
        raise StoreError(f"{store_path} is not a docker-machine store (no machines/ folder)")
    client = store_client(store)
    result, imported = Result(), []
    folders = sorted(machines_dir.iterdir())
    with parse_cache():
        for n, machine_dir in enumerate(folders, 1):
            found = _import_one(store, machine_dir, client, result, user, log, tags_from_labels)
            if found:
                imported.append(found)
            if n % PROGRESS_EVERY == 0 and n < len(folders):
                log(f"… {n} of {len(folders)} folders read")
    _check_all(imported, log)
    return result


def _import_one(store: Store, machine_dir: Path, client, result: Result, user, log, tags: bool):
    """One machine's folder: (machine, kind, CA) when imported, else None (the reason kept)."""
    name = machine_dir.name
    try:
        config = _config(store, name)
        if config is None:
            return None  # not a machine's folder
        name = config["Name"] if isinstance(config.get("Name"), str) else name
        machine, kind, tls = _machine(store, machine_dir, config, user, log)
        if tags:
            machine.tags = _tags(machine, log)
        with transaction.atomic():
            ca = _store_ca(tls, client)
            if machine.driver_class.attaches_engines and machine.engine_url.startswith("tcp://"):
                # An engine attached by URL is reached with the store's CA and client
                # certificate (there is no server certificate of dockerdash's to go by).
                machine.driver_options["tls_ca"] = ca.name
            create_machine(machine, user=user, via="import")
    except Refused as e:
        result.refused.append((name, str(e)))
    except ValidationError as e:
        result.refused.append((name, f"it is not valid: {one_line(e)}"))
    else:
        result.imported.append(machine.name)
        _imported(machine, kind, ca, log)
        return machine
    log(f"{shown(name)}: refused: {result.refused[-1][1]}")
    return None


def _check_all(machines: list[Machine], log) -> None:
    """Look at every imported machine now (so that `env` and the list know their state at
    once), HEALTH_CHECK_CONCURRENCY at a time: hosts that never answer cost one timeout.
    The threads only probe; what they observed is stored here, in the caller's thread."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from django.conf import settings

    from machines.engine.health import engine_access, probe, save_observation

    if not machines:
        return
    workers = min(settings.HEALTH_CHECK_CONCURRENCY, len(machines))
    log(f"Checking {len(machines)} machines, {workers} at a time")
    with ThreadPoolExecutor(workers, thread_name_prefix="import-check") as pool:
        futures = {pool.submit(probe, m, engine_access(m)): m for m in machines}
        for n, future in enumerate(as_completed(futures), 1):
            machine = futures[future]
            save_observation(machine, **future.result())
            state = machine.get_state_display()
            if machine.engine_reachable:
                log(f"{machine.name}: {state}, Docker {machine.docker_version}")
            else:
                log(f"{machine.name}: {state}; {machine.last_error or 'engine not reached'}")
            if n % PROGRESS_EVERY == 0 and n < len(futures):
                log(f"… {n} of {len(futures)} machines checked")


def _config(store: Store, folder: str) -> dict | None:
    if store.path(("machines", folder), "folder") is None:
        return None
    path = store.path(("machines", folder, "config.json"), "config.json")
    if path is None:
        return None
    try:
        config = json.loads(store.read(path, "config.json"))
    except ValueError as e:
        raise Refused(f"its config.json is not JSON ({e})") from None
    if not isinstance(config, dict):
        raise Refused("its config.json is not as docker-machine writes it")
    return config


def _section(parent: dict, key: str) -> dict:
    value = parent.get(key) or {}
    if not isinstance(value, dict):
        raise Refused(f"its config.json's {key} is not as docker-machine writes it")
    return value


def _port(value, default: int, what: str) -> int:
    if value in (None, "", 0):
        return default
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise Refused(f"its {what} {value!r} is not a port number")
    return int(value)


def _driver(kind: str) -> Driver:
    """The driver row of one of our kinds: the default one, made if it is missing."""
    return (
        Driver.objects.filter(name=kind, kind=kind).first()
        or Driver.objects.filter(kind=kind).first()
        or Driver.objects.create(name=kind, kind=kind)
    )


def _machine(store: Store, machine_dir: Path, config: dict, user, log):
    """The Machine a config.json describes (not saved, not validated yet), its driver kind
    in docker-machine's words and its TLS files."""
    name = config.get("Name") or machine_dir.name
    if not isinstance(name, str):
        raise Refused("its name is not a text")
    if Machine.objects.filter(name=name).exists():
        raise Refused("a machine of that name exists in dockerdash already")
    driver_cfg = _section(config, "Driver")
    host_options = _section(config, "HostOptions")
    auth = _section(host_options, "AuthOptions")
    engine = _section(host_options, "EngineOptions")
    kind = config.get("DriverName") or ""
    if not isinstance(kind, str):
        raise Refused("its DriverName is not a text")
    ours, _ = for_docker_machine(kind)
    tls = read_tls(store, machine_dir.name, auth)

    ip = _host_of(driver_cfg.get("IPAddress") or "")
    port = _port(driver_cfg.get("EnginePort"), 2376, "EnginePort")
    host = f"[{ip}]" if isinstance(ip, str) and ":" in ip else ip
    url = driver_cfg.get("URL") or (f"tcp://{host}:{port}" if ip else "")
    if not url:
        raise Refused("its config.json gives neither an IP address nor a URL")
    machine = Machine(
        name=name,
        ip=ip,
        engine_url=url,
        engine_port=port,
        ssh_user=driver_cfg.get("SSHUser") or "root",
        ssh_port=_port(driver_cfg.get("SSHPort"), 22, "SSHPort"),
        ssh_private_key=_ssh_key(store, machine_dir.name, driver_cfg, name, log),
        engine_labels=engine.get("Labels") or [],
        engine_insecure_registries=engine.get("InsecureRegistry") or [],
        engine_registry_mirrors=engine.get("RegistryMirror") or [],
        engine_storage_driver=engine.get("StorageDriver") or "",
        engine_env=engine.get("Env") or [],
        engine_opts=_flags(engine.get("ArbitraryFlags") or []),
        engine_install_url=engine.get("InstallURL") or "",
        tls_san=auth.get("ServerCertSANs") or [],
        tls_server_cert=tls.server_cert,
        tls_server_key=tls.server_key,
        tls_server_expires_at=_not_after(tls.server_cert) if tls.server_cert else None,
        driver_options={"imported_from": str(machine_dir), "docker_machine_driver": kind},
        created_by=user,
        created_at=timezone.now(),
        driver=_driver(ours),
    )
    if machine.driver_class.attaches_engines:
        machine.driver_options["url"] = url
    return machine, kind, tls


def _host_of(ip):
    """docker-machine's `none` driver records its URL's "host:port" as the IPAddress: the
    host is the address. Anything else is left whole for the model's validation to judge."""
    if not isinstance(ip, str):
        return ip
    host, sep, port = ip.rpartition(":")
    if sep and port.isdigit() and host.startswith("[") and host.endswith("]"):
        return host[1:-1]  # [v6]:port
    if sep and port.isdigit() and host and ":" not in host:
        return host
    return ip


def _tags(machine: Machine, log) -> dict[str, str]:
    """The engine labels that can be tags (asked for with --tags-from-labels)."""
    tags = {}
    for label in machine.engine_labels if isinstance(machine.engine_labels, list) else []:
        try:
            key, value = parse_tag(label) if isinstance(label, str) else ("", "")
        except ValueError as e:
            log(f"{shown(machine.name)}: label not taken as a tag: {e}")
            continue
        if key:
            tags[key] = value
    return tags


def _flags(flags):
    """docker-machine keeps --engine-opt as name=value and adds the dashes itself."""
    if not isinstance(flags, list):
        return flags  # refused by the model's validation, with its reason
    return [f if not isinstance(f, str) or f.startswith("-") else f"--{f}" for f in flags]


def _ssh_key(store: Store, folder: str, driver_cfg: dict, name: str, log) -> str:
    path = store.locate(folder, driver_cfg.get("SSHKeyPath"), "SSH key", "id_rsa")
    if path is None:
        return ""
    key = store.read(path, "SSH key")
    try:
        parsed("ssh", key, public_key_of)
    except ValueError as e:
        log(f"{shown(name)}: its SSH key is not usable ({e}); SSH actions will need a new key")
        return ""
    return key


def _imported(machine: Machine, kind: str, ca: CertificateAuthority, log) -> None:
    _, same = for_docker_machine(kind)
    note = (
        ""
        if same or not kind
        else f" (its driver {kind!r} is not one of dockerdash's: imported as a plain TLS engine)"
    )
    log(f"{machine.name}: imported, engine {machine.engine_url}, CA {ca.name}{note}")
    if machine.driver_class.provisioned:
        name = machine.name
        log(f"{name}: its SSH host key will be pinned on first contact (docker-machine kept none)")
