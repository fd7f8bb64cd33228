"""ls, inspect, ip, url, status, active, version: stored state only, never a host."""

from __future__ import annotations

import os

from django.core.management.base import CommandError

from machines.cli.common import get_machine, listed_machines, running, visible_machines
from machines.lib import machinefmt
from machines.models import Machine
from machines.services.inspect import inspect_machine, ls_row
from machines.validation import parse_tag


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
    elif action == "inspect":
        parser.add_argument(
            "-f", "--format", default="", help="a Go template, e.g. {{.Driver.IPAddress}}"
        )
        parser.add_argument("name")
    elif action != "active":
        parser.add_argument("name")


def run(action: str, cli, **options) -> None:
    out = cli.stdout
    if action == "ls":
        listing = _ls(options["quiet"], options["filter"], options["format"])
        if listing:  # nothing matched: print nothing (`ls -q --filter ... | wc -l` is 0)
            out.write(listing)
    elif action == "inspect":
        out.write(_inspected(get_machine(options["name"], secrets=False), options["format"]))
    elif action == "ip":
        out.write(get_machine(options["name"], secrets=False).ip)
    elif action == "url":
        out.write(running(get_machine(options["name"], secrets=False)).url)
    elif action == "status":
        out.write(get_machine(options["name"], secrets=False).get_state_display())
    elif action == "active":
        out.write(_active())
    elif action == "version":
        out.write(_version(options["name"]))


def _ls(quiet: bool, filters: list[str], format: str) -> str:
    try:
        wanted = machinefmt.parse_filters(filters, parse_tag)
        rows = [ls_row(m) for m in visible_machines(listed_machines()).order_by("name")]
        return machinefmt.render_ls(
            [r for r in rows if machinefmt.matches(r, wanted)], quiet, format
        )
    except ValueError as e:
        raise CommandError(str(e)) from None


def _inspected(machine: Machine, template: str) -> str:
    try:
        return machinefmt.inspect_text(inspect_machine(machine), template)
    except ValueError as e:
        raise CommandError(str(e)) from None


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
    machine = running(get_machine(name, secrets=False))
    if not machine.docker_version:
        raise CommandError(f"The Docker version of {name} is not known yet")
    return machine.docker_version
