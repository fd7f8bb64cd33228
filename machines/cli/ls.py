"""ls, inspect, ip, url, status, active, version: stored state only, never a host."""

from __future__ import annotations

import json
import os
import re

from django.core.management.base import CommandError

from machines.fields import hidden_options
from machines.models import Machine
from machines.validation import parse_tag

from .common import get_machine

LS_FIELDS = {
    "Name": lambda m: m.name,
    "Active": lambda m: "*" if _is_active(m) else "-",
    "DriverName": lambda m: m.driver.kind,
    "State": lambda m: m.get_state_display(),
    "URL": lambda m: m.url,
    "DockerVersion": lambda m: m.docker_version or "Unknown",
    "Error": lambda m: m.last_error,
    "ResponseTime": lambda m: f"{m.response_time_ms}ms" if m.response_time_ms is not None else "",
    "IP": lambda m: m.ip,
    "Tags": lambda m: ",".join(m.tag_list),
}
LS_DEFAULT = (
    "table {{.Name}}\t{{.Active}}\t{{.DriverName}}\t{{.State}}\t{{.URL}}"
    "\t{{.DockerVersion}}\t{{.Error}}"
)
HEADERS = {
    "DriverName": "DRIVER",
    "DockerVersion": "DOCKER",
    "Error": "ERRORS",
    "ResponseTime": "RESPONSE",
}
FIELD_RE = re.compile(r"{{\s*\.(\w+)\s*}}")


def add_arguments(action: str, parser) -> None:
    if action == "ls":
        parser.add_argument("-q", "--quiet", action="store_true", help="names only")
        parser.add_argument("-f", "--filter", action="append", default=[], help="key=value")
        parser.add_argument("--format", default="", help="Go-template-like, e.g. {{.Name}}")
        parser.add_argument(
            "-t",
            "--timeout",
            type=int,
            default=10,
            help="accepted for docker-machine compatibility; ls reads stored state and never waits",
        )
    elif action == "version":
        parser.add_argument("name", nargs="?")
    elif action != "active":
        parser.add_argument("name")


def run(action: str, cli, **options) -> None:
    out = cli.stdout
    if action == "ls":
        out.write(_ls(options["quiet"], options["filter"], options["format"]))
    elif action == "inspect":
        out.write(json.dumps(_inspect(get_machine(options["name"])), indent=4))
    elif action == "ip":
        out.write(get_machine(options["name"]).ip)
    elif action == "url":
        out.write(get_machine(options["name"]).url)
    elif action == "status":
        out.write(get_machine(options["name"]).get_state_display())
    elif action == "active":
        out.write(_active())
    elif action == "version":
        out.write(_version(options["name"]))


def _is_active(machine: Machine) -> bool:
    return bool(machine.url) and os.getenv("DOCKER_HOST", "") == machine.url


def _ls(quiet: bool, filters: list[str], format: str) -> str:
    wanted = _parse_filters(filters)
    machines = list(Machine.objects.select_related("driver").order_by("name"))
    machines = [m for m in machines if _matches(m, wanted)]
    if quiet:
        format = "{{.Name}}"
    template = (format or LS_DEFAULT).encode().decode("unicode_escape")
    table = template.startswith("table ")
    if table:
        template = template.removeprefix("table ")
    for name in FIELD_RE.findall(template):
        if name not in LS_FIELDS:
            raise CommandError(
                f"Unknown field {name!r} in --format (known: {', '.join(LS_FIELDS)})"
            )
    rows = []
    if table:
        rows.append(FIELD_RE.sub(lambda m: HEADERS.get(m[1], m[1].upper()), template))
    for machine in machines:
        rows.append(
            FIELD_RE.sub(lambda m, machine=machine: str(LS_FIELDS[m[1]](machine)), template)
        )
    if table:
        rows = _align(rows)
    return "\n".join(rows)


def _inspect(machine: Machine) -> dict:
    return {
        "Name": machine.name,
        "DriverName": machine.driver.kind,
        "Driver": {
            "Name": machine.driver.name,
            **machine.driver.settings,
            **hidden_options(machine.driver_options),  # user data: its size and hash only
        },
        "State": machine.state,
        "IPAddress": machine.ip,
        "URL": machine.url,
        "SSHUser": machine.ssh_user,
        "SSHPort": machine.ssh_port,
        "SSHHostKey": machine.ssh_host_key,
        "DockerVersion": machine.docker_version,
        "EngineOptions": {
            "Labels": machine.engine_labels,
            "InsecureRegistry": machine.engine_insecure_registries,
            "RegistryMirror": machine.engine_registry_mirrors,
            "StorageDriver": machine.engine_storage_driver,
            "Env": machine.engine_env,
            "ArbitraryFlags": machine.engine_opts,
            "InstallURL": machine.engine_install_url,
        },
        "TLS": _tls_info(machine),
        "LastSeen": machine.last_seen.isoformat() if machine.last_seen else None,
        "LastError": machine.last_error,
        "LastErrorDetail": machine.last_error_detail,
        "Tags": machine.tags,
        "CreatedAt": machine.created_at.isoformat(),
        "Operations": [
            {
                "ID": op.pk,
                "Kind": op.kind,
                "Status": op.status,
                "CreatedAt": op.created_at.isoformat(),
                "FinishedAt": op.finished_at.isoformat() if op.finished_at else None,
                "Error": op.error,
            }
            for op in machine.operations.all()
        ],
    }


def _tls_info(machine: Machine) -> dict | None:
    """The engine's certificates: what they name and until when (no key, ever)."""
    if not machine.tls_server_cert:
        return None
    from machines.provision import certs

    ca = certs.ca_for_machine(machine)
    return {
        "ServerCertSerial": machine.tls_server_serial,
        "ServerCertExpiresAt": machine.tls_server_expires_at.isoformat(),
        "ServerCertSANs": certs.names_in(machine.tls_server_cert),
        "ExtraSANs": machine.tls_san,
        "CAExpiresAt": ca.expires_at.isoformat(),
        "ClientCertExpiresAt": ca.client_expires_at.isoformat(),
        "CertPath": str(certs.bundle_dir(machine.name)),
    }


def _active() -> str:
    host = os.getenv("DOCKER_HOST", "")
    active = [m for m in Machine.objects.exclude(engine_url="") if m.url == host]
    if not active:
        raise CommandError("No active host found")
    return active[0].name


def _version(name: str | None) -> str:
    if name is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"dockerdash version {version('dockerdash')}"
        except PackageNotFoundError:
            return "dockerdash version (not installed as a package)"
    machine = get_machine(name)
    if not machine.docker_version:
        raise CommandError(f"The Docker version of {name} is not known yet")
    return machine.docker_version


def _parse_filters(items: list[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("driver", "state", "name", "label", "tag"):
            raise CommandError(
                f"Unsupported filter {item!r} (use driver=, state=, name=, label=, tag=)"
            )
        if key == "tag":
            try:
                parse_tag(value)
            except ValueError as e:
                raise CommandError(f"Unsupported filter {item!r}: {e}") from None
        filters.setdefault(key, []).append(value)
    return filters


def _matches(machine: Machine, filters: dict[str, list[str]]) -> bool:
    tests = {
        "driver": lambda v: machine.driver.kind == v or machine.driver.name == v,
        "state": lambda v: machine.state.lower() == v.lower(),
        "name": lambda v: re.search(v, machine.name) is not None,
        "label": lambda v: v in machine.engine_labels,
        "tag": lambda v: _has_tag(machine, v),
    }
    return all(any(tests[key](v) for v in values) for key, values in filters.items())


def _has_tag(machine: Machine, wanted: str) -> bool:
    """tag=key=value: that value; tag=key: any value."""
    key, sep, value = wanted.partition("=")
    return key in machine.tags and (not sep or machine.tags[key] == value)


def _align(rows: list[str]) -> list[str]:
    cells = [row.split("\t") for row in rows]
    widths = [
        max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(max(map(len, cells)))
    ]
    return ["   ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells]
