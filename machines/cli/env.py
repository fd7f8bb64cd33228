"""env and config: pointing the docker CLI at a machine, as docker-machine's did."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from machines import shellquote
from machines.models import Machine
from machines.shellquote import SHELLS
from machines.validation import one_line

from .common import HOST_NOT_RUNNING, clean_only, get_machine


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
    shell = shell or _detect_shell()
    values: dict[str, str] = {
        "DOCKER_TLS_VERIFY": "",
        "DOCKER_HOST": "",
        "DOCKER_CERT_PATH": "",
        "DOCKER_MACHINE_NAME": "",
    }
    if unset:
        if name:
            raise CommandError("Error: Expected no machine name when the -u flag is present")
        ip = ""
    else:
        if not name:
            raise CommandError("Error: Expected one machine name")
        machine = connectable(get_machine(name))
        values = {
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_HOST": machine.url,
            "DOCKER_CERT_PATH": str(cert_path(machine)),
            "DOCKER_MACHINE_NAME": machine.name,
        }
        ip = machine.ip
    if no_proxy:
        var, value = _no_proxy(ip)
        values[var] = "" if unset else value
    try:
        lines = [
            shellquote.unset_line(shell, k) if unset else shellquote.set_line(shell, k, v)
            for k, v in values.items()
        ]
    except ValueError as e:
        raise CommandError(f"Cannot write the environment for {shell}: {e}") from None
    return "".join(lines) + _usage_hint(shell, argv)


def cert_path(machine: Machine) -> Path:
    """Where the client certificates go: under $MACHINE_STORAGE_PATH/machines/NAME when
    docker-machine's variable (or -s) is set, where its users' scripts look; else in
    dockerdash's data folder."""
    from machines.provision import certs

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
    folder = cert_path(machine)
    return (
        f"--tlsverify --tlscacert={json.dumps(str(folder / 'ca.pem'))} "
        f"--tlscert={json.dumps(str(folder / 'cert.pem'))} "
        f"--tlskey={json.dumps(str(folder / 'key.pem'))} -H={machine.url}"
    )


def connectable(machine: Machine) -> Machine:
    """The machine, if the docker CLI can reach it with the dashboard's certificates."""
    from machines.provision import certs

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


def _detect_shell() -> str:
    name = os.path.basename(os.getenv("SHELL", ""))
    if name == "fish":
        return "fish"
    if name in ("tcsh", "csh"):
        return "tcsh"
    return "bash"


def _no_proxy(ip: str) -> tuple[str, str]:
    """docker-machine's --no-proxy: the machine's IP added to no_proxy (or NO_PROXY) once."""
    var, value = "no_proxy", os.getenv("no_proxy", "")
    if not value:
        var, value = "NO_PROXY", os.getenv("NO_PROXY", "")
    if ip and not value:
        value = ip
    elif ip and ip not in value:
        value = f"{value},{ip}"
    return var, value


def _usage_hint(shell: str, argv: list[str]) -> str:
    """docker-machine's closing comment: how to load this output into the shell."""
    argv = list(argv)
    if os.path.basename(argv[0]) == "manage.py":
        argv[0] = f"python {argv[0]}"
    elif " " in argv[0] or "\\" in argv[0]:
        argv[0] = f'"{argv[0]}"'
    line = " ".join(argv)
    comment, cmd = "#", f"eval $({line})"
    if shell == "fish":
        cmd = f"eval ({line})"
    elif shell == "powershell":
        cmd = f"& {line} | Invoke-Expression"
    elif shell == "cmd":
        comment, cmd = "REM", f"\t@FOR /f \"tokens=*\" %i IN ('{line}') DO @%i"
    elif shell == "emacs":
        comment = ";;"
        cmd = f'(with-temp-buffer (shell-command "{line}" (current-buffer)) (eval-buffer))'
    elif shell == "tcsh":
        comment, cmd = ":", f"eval `{line}`"
    return f"{comment} Run this command to configure your shell: \n{comment} {cmd}\n"
