"""env and config: pointing the docker CLI at a machine, as docker-machine's did."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from machines.cli.common import HOST_NOT_RUNNING, clean_only, get_machine
from machines.lib import machinefmt
from machines.lib.shellquote import SHELLS
from machines.models import Machine
from machines.validation import one_line


def add_arguments(action: str, parser) -> None:
    if action == "config":
        parser.add_argument("name")
        return
    parser.add_argument("name", nargs="?")
    parser.add_argument("--shell", choices=SHELLS, default="", help="default: from $SHELL")
    parser.add_argument("-u", "--unset", action="store_true", help="unset the variables instead")
    parser.add_argument("--no-proxy", action="store_true", help="add the machine's IP to NO_PROXY")


def run(action: str, cli, name: str | None, **options) -> None:
    if action == "config":
        cli.stdout.write(_config(get_machine(name)))
    else:
        cli.stdout.write(_env(name, **options), ending="")


def _env(name: str | None, shell: str, unset: bool, no_proxy: bool) -> str:
    # The usage hint repeats the command line; called from code, rebuild one like it.
    argv = list(sys.argv)
    if argv[1:3] != ["machine", "env"]:
        argv = ["manage.py", "machine", "env"]
        argv += ["--unset"] if unset else []
        argv += ["--shell", shell] if shell else []
        argv += ["--no-proxy"] if no_proxy else []
        argv += [name] if name else []

    def connect(name: str) -> tuple[str, str, str]:
        machine = connectable(get_machine(name))
        return machine.url, str(cert_path(machine)), machine.ip

    try:
        return machinefmt.env_text(
            shell, unset=unset, with_no_proxy=no_proxy, name=name, connect=connect, argv=argv
        )
    except machinefmt.EnvError as e:
        raise CommandError(str(e)) from None


def cert_path(machine: Machine) -> Path:
    """Where the client certificates go: under $MACHINE_STORAGE_PATH/machines/NAME when
    docker-machine's variable (or -s) is set, where its users' scripts look; else in
    dockerdash's data folder."""
    from machines.pki import certs

    store = os.getenv("MACHINE_STORAGE_PATH")
    if not store:
        return certs.write_client_bundle(machine)
    folder = Path(store).expanduser().absolute() / "machines" / machine.name
    if not folder.parent.exists():
        folder.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return certs.write_client_bundle(machine, folder)
    except OSError as e:
        raise CommandError(f"Cannot write the certificates to {folder}: {e.strerror}") from None


def _config(machine: Machine) -> str:
    machine = connectable(machine)
    return machinefmt.config_text(str(cert_path(machine)), machine.url)


def connectable(machine: Machine) -> Machine:
    """The machine, if the docker CLI can reach it with the dashboard's certificates."""
    from machines.pki import certs

    try:
        clean_only(machine, "name", "ip", "engine_url")
    except ValidationError as e:
        raise CommandError(f"{machine.name!r} cannot be connected to: {one_line(e)}") from None
    if machine.state != Machine.State.RUNNING:
        raise CommandError(
            f"{HOST_NOT_RUNNING}: {machine.name} is not running. Please start it in order to "
            "use the connection settings"
        )
    if machine.url.startswith("tcp://") and machine.driver_options.get("tls_ca"):
        # An engine attached with its own CA and a client certificate (by URL, or imported
        # from a docker-machine store): those are what the docker CLI needs.
        return machine
    if not machine.tls_server_cert:
        raise CommandError(
            f"{machine.name} has no TLS certificates from dockerdash "
            + (
                f"yet: run `machine provision {machine.name}`"
                if machine.driver_class.issues_certificates
                else f"(its engine is attached by URL: {machine.url})"
            )
        )
    if not certs.covers(machine.tls_server_cert, machine.ip):
        raise CommandError(
            f"The certificate of {machine.name}'s engine does not name its IP {machine.ip} "
            f"(it names {', '.join(certs.names_in(machine.tls_server_cert))}): run "
            f"`machine regenerate-certs {machine.name}`"
        )
    return machine
