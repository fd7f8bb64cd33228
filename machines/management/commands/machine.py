"""`manage.py machine ACTION ...`: the docker-machine command line, on the same Operations."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from machines import shellquote
from machines.models import Driver, Machine, Operation, machine_name_validator
from machines.shellquote import SHELLS
from machines.validation import one_line

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
# Engine options, as docker-machine's --engine-* flags: option -> (MachineForm field, repeated).
ENGINE_FLAGS = {
    "engine_label": ("engine_labels", True),
    "engine_insecure_registry": ("engine_insecure_registries", True),
    "engine_registry_mirror": ("engine_registry_mirrors", True),
    "engine_storage_driver": ("engine_storage_driver", False),
    "engine_env": ("engine_env", True),
    "engine_opt": ("engine_opts", True),
    "engine_install_url": ("engine_install_url", False),
    "tls_san": ("tls_san", True),
}
LIFECYCLE = {
    "start": Operation.Kind.START,
    "stop": Operation.Kind.STOP,
    "restart": Operation.Kind.RESTART,
    "kill": Operation.Kind.KILL,
}


def _is_active(machine: Machine) -> bool:
    return bool(machine.url) and os.getenv("DOCKER_HOST", "") == machine.url


class Command(BaseCommand):
    help = "Create and manage Docker hosts, as docker-machine did."
    # The system checks import every URL and view (and with them SSH and Docker libraries):
    # a command run many times a day skips them, `manage.py check` still runs them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        ls = sub.add_parser("ls", help="List machines (stored state; never waits on a host)")
        ls.add_argument("-q", "--quiet", action="store_true", help="names only")
        ls.add_argument("-f", "--filter", action="append", default=[], help="key=value")
        ls.add_argument("--format", default="", help="Go-template-like, e.g. {{.Name}}")
        ls.add_argument(
            "-t",
            "--timeout",
            type=int,
            default=10,
            help="accepted for docker-machine compatibility; ls reads stored state and never waits",
        )

        inspect = sub.add_parser("inspect", help="Details of a machine as JSON")
        inspect.add_argument("name")

        for name in ("ip", "url", "status"):
            p = sub.add_parser(name, help=f"Print the {name} of a machine")
            p.add_argument("name")

        create = sub.add_parser("create", help="Create a machine")
        create.add_argument("name")
        create.add_argument("-d", "--driver", default="none", help="driver kind or configured name")
        create.add_argument("--container-engine", default="", help="parent engine URL")
        create.add_argument("--container-image", default="", help="host image")
        create.add_argument("--generic-ip-address", default="")
        create.add_argument("--generic-ssh-user", default="root")
        create.add_argument("--generic-ssh-key", default="", help="path of a private key")
        create.add_argument("--generic-ssh-port", type=int, default=22)
        create.add_argument("--generic-engine-port", type=int, default=2376)
        create.add_argument("--url", default="", help="engine URL (none driver)")
        for flag in ("--tls-ca-cert", "--tls-client-cert", "--tls-client-key"):
            create.add_argument(flag, default="", help="PEM file, for a tcp:// --url")
        for flag, help_text in (
            ("--engine-label", "a label for the engine, key=value (repeatable)"),
            ("--engine-insecure-registry", "an insecure registry to allow (repeatable)"),
            ("--engine-registry-mirror", "a registry mirror (repeatable)"),
            ("--engine-env", "an environment variable of the daemon, KEY=value (repeatable)"),
            ("--engine-opt", "a daemon flag, name=value as docker-machine or --name=value"),
            ("--tls-san", "an extra name or IP for the engine's certificate (repeatable)"),
        ):
            create.add_argument(flag, action="append", default=[], help=help_text)
        create.add_argument("--engine-storage-driver", default="", help="the storage driver")
        create.add_argument(
            "--engine-install-url",
            default="",
            help="install Docker with this script (e.g. https://get.docker.com) instead of the "
            "distribution's package",
        )
        create.add_argument("-v", "--verbose", action="store_true", help="stream the whole log")

        env = sub.add_parser("env", help="Print the commands pointing the docker CLI at a machine")
        env.add_argument("name", nargs="?")
        env.add_argument("--shell", choices=SHELLS, default="", help="default: from $SHELL")
        env.add_argument("-u", "--unset", action="store_true", help="unset the variables instead")
        env.add_argument("--no-proxy", action="store_true", help="add the machine's IP to NO_PROXY")

        config = sub.add_parser("config", help="Print the docker CLI's flags for a machine")
        config.add_argument("name")

        for action, help_text in (
            ("provision", "Provision machines again (idempotent)"),
            ("upgrade", "Upgrade Docker on machines to the newest package"),
        ):
            p = sub.add_parser(action, help=help_text)
            p.add_argument("names", nargs="+")
            p.add_argument("-v", "--verbose", action="store_true")

        regen = sub.add_parser(
            "regenerate-certs", help="New TLS certificates for machines (restarts Docker only)"
        )
        regen.add_argument("names", nargs="+")
        regen.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
        regen.add_argument(
            "--client-certs",
            action="store_true",
            help="also make a new CA and client certificate",
        )
        regen.add_argument("-v", "--verbose", action="store_true")

        for action in LIFECYCLE:
            p = sub.add_parser(action, help=f"{action.capitalize()} machines")
            p.add_argument("names", nargs="+")
            p.add_argument("-v", "--verbose", action="store_true")

        sub.add_parser("active", help="Print the machine DOCKER_HOST points at")

        version = sub.add_parser("version", help="dockerdash's version, or a machine's Docker's")
        version.add_argument("name", nargs="?")

        ssh = sub.add_parser("ssh", help="Log into a machine with SSH or run a command on it")
        ssh.add_argument("name")
        ssh.add_argument("command", nargs=argparse.REMAINDER)

        scp = sub.add_parser("scp", help="Copy files to, from or between machines (machine:path)")
        scp.add_argument("-r", "--recursive", action="store_true")
        scp.add_argument("source")
        scp.add_argument("destination")

        imp = sub.add_parser(
            "import-docker-machine", help="Bring in the machines of a docker-machine store"
        )
        imp.add_argument(
            "--storage-path",
            default=os.getenv("MACHINE_STORAGE_PATH", "~/.docker/machine"),
            help="the store (default: $MACHINE_STORAGE_PATH or ~/.docker/machine)",
        )

        # Runs one operation and exits; `_wait` starts it detached when no runner is alive.
        run_op = sub.add_parser("run-operation", help=argparse.SUPPRESS)
        run_op.add_argument("operation_id", type=int)

        rm = sub.add_parser("rm", help="Remove machines")
        rm.add_argument("names", nargs="+")
        rm.add_argument("-y", action="store_true", help="do not ask for confirmation")
        rm.add_argument("-f", "--force", action="store_true", help="forget even if removal fails")
        rm.add_argument(
            "--purge",
            action="store_true",
            help="generic: first undo dockerdash's Docker configuration on the host",
        )
        rm.add_argument("-v", "--verbose", action="store_true")

    def handle(self, *args, action: str, **options):
        try:
            getattr(self, "do_" + action.replace("-", "_"))(**options)
        except CommandError as e:
            # As docker-machine: the error alone on stderr, exit status 1.
            self.stderr.write(str(e))
            sys.exit(1)

    # -- reading stored state ------------------------------------------------------------
    def do_ls(self, quiet: bool, filter: list[str], format: str, **_):
        machines = list(Machine.objects.select_related("driver").order_by("name"))
        machines = [m for m in machines if _matches(m, _parse_filters(filter))]
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
        self.stdout.write("\n".join(rows))

    def do_inspect(self, name: str, **_):
        machine = _get(name)
        data = {
            "Name": machine.name,
            "DriverName": machine.driver.kind,
            "Driver": {
                "Name": machine.driver.name,
                **machine.driver.settings,
                **machine.driver_options,
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
        self.stdout.write(json.dumps(data, indent=4))

    def do_ip(self, name: str, **_):
        self.stdout.write(_get(name).ip)

    def do_url(self, name: str, **_):
        self.stdout.write(_get(name).url)

    def do_status(self, name: str, **_):
        self.stdout.write(_get(name).get_state_display())

    # -- actions: the same Operations as the web -----------------------------------------
    # (operations, the runner and their SSH and Docker libraries are imported only here:
    # `ls` and friends start in a fraction of the time without them.)
    def do_create(self, name: str, driver: str, verbose: bool, **opts):
        try:
            machine_name_validator(name)
        except Exception:
            raise CommandError(
                f"Invalid machine name {name!r}: use letters, digits, '-' and '.'"
            ) from None
        if Machine.objects.filter(name=name).exists():
            raise CommandError(f"Machine {name} already exists")
        driver_obj = _driver_for(driver, opts)
        impl = driver_obj.get_driver()
        form = impl.options_form(data=_options_data(driver_obj.kind, opts))
        if not form.is_valid():
            errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
            raise CommandError(f"Invalid options for the {driver_obj.kind} driver: {errors}")
        engine_options = _engine_options(name, driver_obj, opts)
        from machines import operations
        from machines.provision.ssh import generate_key

        with transaction.atomic():
            machine = Machine(name=name, driver=driver_obj, **engine_options)
            impl.apply_options(machine, form.cleaned_data)
            if not machine.ssh_private_key:
                machine.ssh_private_key, _ = generate_key()
            try:
                machine.full_clean()
            except ValidationError as e:
                raise CommandError(f"Invalid machine: {one_line(e)}") from None
            machine.save()
            op = operations.request(machine, Operation.Kind.CREATE, via="cli")
        self.stdout.write(f"Creating machine {name} ({driver_obj.kind})...")
        self._wait(op, verbose)

    def _lifecycle(self, kind: str, names: list[str], verbose: bool, args: dict | None = None):
        from machines import operations

        failed = False
        for name in names:
            machine = _get(name)
            try:
                op = operations.request(machine, kind, via="cli", args=args)
            except operations.OperationConflict as e:
                self.stderr.write(str(e))
                failed = True
                continue
            try:
                self._wait(op, verbose)
            except CommandError as e:
                self.stderr.write(str(e))
                failed = True
        if failed:
            sys.exit(1)

    def do_start(self, names, verbose, **_):
        self._lifecycle(Operation.Kind.START, names, verbose)

    def do_stop(self, names, verbose, **_):
        self._lifecycle(Operation.Kind.STOP, names, verbose)

    def do_restart(self, names, verbose, **_):
        self._lifecycle(Operation.Kind.RESTART, names, verbose)

    def do_kill(self, names, verbose, **_):
        self._lifecycle(Operation.Kind.KILL, names, verbose)

    def do_rm(self, names, y: bool, force: bool, purge: bool, verbose: bool, **_):
        for name in names:
            _get(name)  # fail early on a typo
        if not y:
            answer = input(f"About to remove {', '.join(names)}\nAre you sure? (y/n): ")
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("Remove cancelled")
        self._lifecycle(
            Operation.Kind.REMOVE, names, verbose, args={"force": force, "purge": purge}
        )
        for name in names:
            if not Machine.objects.filter(name=name).exists():
                self.stdout.write(f"Successfully removed {name}")

    def do_provision(self, names, verbose, **_):
        self._lifecycle(Operation.Kind.PROVISION, names, verbose)

    def do_upgrade(self, names, verbose, **_):
        self._lifecycle(Operation.Kind.UPGRADE, names, verbose)

    def do_regenerate_certs(self, names, force: bool, client_certs: bool, verbose: bool, **_):
        for name in names:
            _get(name)
        if not force:
            answer = input("Regenerate TLS machine certs?  Warning: this is irreversible. (y/n): ")
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("Regenerating the certificates cancelled")
        if client_certs and len(names) > 1:
            # One new CA, not one per machine: the first makes it, the others use it.
            self._lifecycle(
                Operation.Kind.REGENERATE_CERTS, names[:1], verbose, args={"client_certs": True}
            )
            names = names[1:]
            client_certs = False
        self._lifecycle(
            Operation.Kind.REGENERATE_CERTS, names, verbose, args={"client_certs": client_certs}
        )

    # -- pointing the docker CLI at a machine ----------------------------------------------
    def do_env(self, name: str | None, shell: str, unset: bool, no_proxy: bool, **_):
        from machines.provision import certs

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
            machine = _connectable(_get(name))
            values = {
                "DOCKER_TLS_VERIFY": "1",
                "DOCKER_HOST": machine.url,
                "DOCKER_CERT_PATH": str(certs.write_client_bundle(machine)),
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
        self.stdout.write("".join(lines) + _usage_hint(shell, argv), ending="")

    def do_config(self, name: str, **_):
        from machines.provision import certs

        machine = _connectable(_get(name))
        folder = certs.write_client_bundle(machine)
        self.stdout.write(
            f"--tlsverify --tlscacert={json.dumps(str(folder / 'ca.pem'))} "
            f"--tlscert={json.dumps(str(folder / 'cert.pem'))} "
            f"--tlskey={json.dumps(str(folder / 'key.pem'))} -H={machine.url}"
        )

    def _wait(self, op: Operation, verbose: bool) -> None:
        """Follow an operation to its end, printing its steps (every line with --verbose).

        A live runner (serve or worker) runs it; without one, a one-shot runner process is
        started detached, so that Ctrl-C here only stops following: the operation goes on.
        """
        from machines import runner

        runner.interrupt_stale()
        if not runner.runner_alive():
            _spawn_runner(op)
        spawned_at = time.monotonic()
        seen = 0
        try:
            while True:
                op.refresh_from_db()
                for line in op.log_lines.filter(seq__gt=seen).order_by("seq"):
                    seen = line.seq
                    if verbose or line.text.startswith(("[", "Failed", "Done", "Interrupted")):
                        self.stdout.write(line.text)
                if not op.is_active:
                    break
                if op.status == Operation.Status.PENDING and time.monotonic() - spawned_at > 10:
                    # The runner we counted on has not taken it: run it ourselves.
                    _spawn_runner(op)
                    spawned_at = time.monotonic()
                time.sleep(0.1)
        except KeyboardInterrupt:
            self.stderr.write(
                f"\nDetached: the {op.kind} of {op.machine_name} goes on in the runner "
                f"(machine inspect {op.machine_name} shows how it ends)."
            )
            sys.exit(130)
        if op.status != Operation.Status.SUCCEEDED:
            raise CommandError(op.error or f"{op.kind} of {op.machine_name} ended {op.status}")

    def do_run_operation(self, operation_id: int, **_):
        from machines import runner

        claimed = runner.claim(operation_id)
        if claimed is not None:
            runner.run_claimed(claimed)

    # -- docker-machine's small commands -------------------------------------------------
    def do_active(self, **_):
        host = os.getenv("DOCKER_HOST", "")
        active = [m for m in Machine.objects.exclude(engine_url="") if m.url == host]
        if not active:
            raise CommandError("No active host found")
        self.stdout.write(active[0].name)

    def do_version(self, name: str | None, **_):
        if name is None:
            from importlib.metadata import PackageNotFoundError, version

            try:
                self.stdout.write(f"dockerdash version {version('dockerdash')}")
            except PackageNotFoundError:
                self.stdout.write("dockerdash version (not installed as a package)")
            return
        machine = _get(name)
        if not machine.docker_version:
            raise CommandError(f"The Docker version of {name} is not known yet")
        self.stdout.write(machine.docker_version)

    def do_ssh(self, name: str, command: list[str], **_):
        machine = _ssh_checked(_get(name))
        with _ssh_files([machine]) as (identity_args, known_hosts):
            status = subprocess.call(ssh_argv(machine, identity_args, known_hosts, command))
        if status:
            sys.exit(status)  # the remote command's own exit status, as ssh gives it

    def do_scp(self, recursive: bool, source: str, destination: str, **_):
        machines, paths = [], []
        for spec in (source, destination):
            name, sep, path = spec.partition(":")
            if sep and "/" not in name and Machine.objects.filter(name=name).exists():
                machine = _ssh_checked(_get(name))
                machines.append(machine)
                paths.append(f"{machine.ssh_user}@{_ssh_host(machine.ip)}:{path}")
            else:
                paths.append(spec)
        if not machines:
            raise CommandError("Name a machine in the source or the destination (machine:path)")
        ports = {m.ssh_port for m in machines}
        if len(ports) > 1:
            raise CommandError("Copying between machines with different SSH ports is not supported")
        with _ssh_files(machines) as (identity_args, known_hosts):
            argv = scp_argv(ports.pop(), identity_args, known_hosts, recursive, paths)
            status = subprocess.call(argv)
        if status:
            raise CommandError(f"scp failed (exit {status})")

    def do_import_docker_machine(self, storage_path: str, **_):
        from machines.dmimport import StoreError, import_store

        try:
            result = import_store(Path(storage_path), log=self.stdout.write)
        except StoreError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(
            f"Imported {len(result.imported)} machines"
            + (f", refused {len(result.refused)}" if result.refused else "")
        )
        # Any refusal fails the command (the others are imported all the same): a script
        # moving a store must notice a machine left behind.
        if result.refused:
            names = ", ".join(name for name, _ in result.refused)
            raise CommandError(f"Not imported: {names} (the reasons are above)")


def _spawn_runner(op: Operation) -> None:
    """A one-shot runner for one operation, in its own session (Ctrl-C here spares it)."""
    from django.db import connection

    env = dict(os.environ)
    if connection.vendor == "sqlite":
        # The very database this process uses (a test's, or DOCKERDASH_DATA_DIR's).
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    subprocess.Popen(
        [sys.executable, "-m", "django", "machine", "run-operation", str(op.pk)],
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": os.getenv("DJANGO_SETTINGS_MODULE", "dockerdash.settings"),
        },
        cwd=Path(__file__).resolve().parents[3],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _ssh_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _ssh_checked(machine: Machine) -> Machine:
    """The machine, if its SSH user and address are what the model allows (a row stored
    before these rules, or edited behind dockerdash's back, is refused here)."""
    try:
        _clean_only(machine, "ip", "ssh_user")
    except ValidationError as e:
        raise CommandError(f"Cannot reach {machine.name} over SSH: {one_line(e)}") from None
    if not machine.ip:
        raise CommandError(f"{machine.name} has no IP address yet")
    return machine


def _clean_only(machine: Machine, *names: str) -> None:
    machine.clean_fields(exclude=[f.name for f in Machine._meta.fields if f.name not in names])


def ssh_argv(
    machine: Machine, identity_args: list[str], known_hosts: Path, command: list[str]
) -> list[str]:
    """ssh's command line: the user by -l and the host after '--', so that neither is ever
    taken for an option, whatever they hold."""
    args = ["ssh", *identity_args, *_ssh_options(known_hosts), "-p", str(machine.ssh_port)]
    args += ["-l", machine.ssh_user]
    args += ["-t"] if not command else []
    return [*args, "--", machine.ip, *command]


def scp_argv(
    port: int, identity_args: list[str], known_hosts: Path, recursive: bool, paths: list[str]
) -> list[str]:
    # -3: between two machines the copy passes through here (neither trusts the other).
    args = ["scp", "-3", *identity_args, *_ssh_options(known_hosts), "-P", str(port)]
    args += ["-r"] if recursive else []
    # scp has no -l: the user goes in user@host (validated); '--' ends the options.
    return [*args, "--", *paths]


@contextlib.contextmanager
def _ssh_files(machines: list[Machine]):
    """The machines' keys and pinned host keys in a private temporary folder, for the
    system ssh/scp; removed afterwards. A host key not pinned yet is pinned first."""
    from machines.provision.ssh import SSHSession

    with tempfile.TemporaryDirectory(prefix="dockerdash-ssh-") as tmp:
        identity_args, known = [], []
        for i, machine in enumerate(machines):
            if not machine.ssh_private_key:
                raise CommandError(f"{machine.name} has no SSH key")
            if not machine.ssh_host_key:
                with SSHSession(
                    machine.ip, machine.ssh_port, machine.ssh_user, machine.ssh_private_key
                ) as session:
                    machine.ssh_host_key = session.host_key
                Machine.objects.filter(pk=machine.pk).update(ssh_host_key=machine.ssh_host_key)
            key_path = Path(tmp) / f"id_{i}"
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(machine.ssh_private_key.strip() + "\n")
            identity_args += ["-i", str(key_path)]
            host = _ssh_host(machine.ip)
            name = host if machine.ssh_port == 22 else f"[{machine.ip}]:{machine.ssh_port}"
            known.append(f"{name} {machine.ssh_host_key}")
        known_hosts = Path(tmp) / "known_hosts"
        known_hosts.write_text("\n".join(known) + "\n")
        yield identity_args, known_hosts


def _ssh_options(known_hosts: Path) -> list[str]:
    # Only the pinned host key, only our keys: the user's ssh config and agent stay out.
    return [
        "-F",
        "/dev/null",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=no",
        "-o",
        "LogLevel=ERROR",
    ]


def _get(name: str) -> Machine:
    try:
        return Machine.objects.select_related("driver").get(name=name)
    except Machine.DoesNotExist:
        raise CommandError(f"Host does not exist: {name!r}") from None


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


def _connectable(machine: Machine) -> Machine:
    """The machine, if the docker CLI can reach it with the dashboard's certificates."""
    from machines.provision import certs

    try:
        _clean_only(machine, "name", "ip", "engine_url")
    except ValidationError as e:
        raise CommandError(f"{machine.name!r} cannot be connected to: {one_line(e)}") from None
    if machine.state != Machine.State.RUNNING:
        raise CommandError(
            f"{machine.name} is not running. Please start it in order to use the connection "
            "settings"
        )
    if not machine.tls_server_cert:
        raise CommandError(
            f"{machine.name} has no TLS certificates from dockerdash "
            + (
                f"(its engine is attached by URL: {machine.url})"
                if machine.driver.kind == "none"
                else f"yet: run `machine provision {machine.name}`"
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


def _engine_options(name: str, driver: Driver, opts: dict) -> dict:
    """The --engine-* and --tls-san flags, validated as the web form validates them."""
    from machines.forms import MachineForm

    data: dict[str, str] = {"name": name, "driver": str(driver.pk)}
    for option, (field, repeated) in ENGINE_FLAGS.items():
        value = opts.get(option) or ([] if repeated else "")
        if option == "engine_opt":
            value = [v if v.startswith("--") else f"--{v}" for v in value]
        data[field] = "\n".join(value) if repeated else value
    form = MachineForm(data=data)
    if not form.is_valid():
        errors = "; ".join(
            f"{k}: {' '.join(v)}" for k, v in form.errors.items() if k not in ("name", "driver")
        )
        if errors:
            raise CommandError(f"Invalid engine options: {errors}")
    return {
        field: form.cleaned_data.get(field, [] if repeated else "")
        for field, repeated in ENGINE_FLAGS.values()
    }


def _driver_for(name: str, opts: dict) -> Driver:
    """A configured driver by name, or the default of a kind (with --container-engine)."""
    if name == "container" and opts.get("container_engine"):
        engine = opts["container_engine"]
        driver, _ = Driver.objects.get_or_create(
            kind="container",
            settings__engine=engine,
            defaults={"name": _free_driver_name("container"), "settings": {"engine": engine}},
        )
        return driver
    driver = Driver.objects.filter(name=name).first() or Driver.objects.filter(kind=name).first()
    if driver is None:
        from machines.drivers import REGISTRY

        if name not in REGISTRY:
            known = ", ".join(sorted({*REGISTRY, *Driver.objects.values_list("name", flat=True)}))
            raise CommandError(f"Driver {name!r} not found (known: {known})")
        # A kind's default driver needs no settings (the container one: DOCKER_HOST).
        driver = Driver.objects.create(name=_free_name(name), kind=name)
    return driver


def _free_name(base: str) -> str:
    return base if not Driver.objects.filter(name=base).exists() else _free_driver_name(base)


def _free_driver_name(base: str) -> str:
    n = 2
    while Driver.objects.filter(name=f"{base}-{n}").exists():
        n += 1
    return f"{base}-{n}"


def _options_data(kind: str, opts: dict) -> dict:
    if kind == "generic":
        key = ""
        if path := opts.get("generic_ssh_key"):
            try:
                with open(os.path.expanduser(path)) as f:
                    key = f.read()
            except OSError as e:
                raise CommandError(f"Cannot read --generic-ssh-key {path}: {e.strerror}") from None
        return {
            "ip_address": opts["generic_ip_address"],
            "ssh_user": opts["generic_ssh_user"],
            "ssh_port": opts["generic_ssh_port"],
            "ssh_key": key,
            "engine_port": opts["generic_engine_port"],
        }
    if kind == "container":
        return {"image": opts.get("container_image") or ""}
    if kind == "none":
        data = {"url": opts.get("url") or ""}
        for key in ("tls_ca_cert", "tls_client_cert", "tls_client_key"):
            data[key] = _read_file(opts.get(key), "--" + key.replace("_", "-"))
        return data
    return {}


def _read_file(path: str | None, flag: str) -> str:
    if not path:
        return ""
    try:
        return Path(path).expanduser().read_text()
    except OSError as e:
        raise CommandError(f"Cannot read {flag} {path}: {e.strerror}") from None


def _parse_filters(items: list[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("driver", "state", "name", "label"):
            raise CommandError(f"Unsupported filter {item!r} (use driver=, state=, name=, label=)")
        filters.setdefault(key, []).append(value)
    return filters


def _matches(machine: Machine, filters: dict[str, list[str]]) -> bool:
    tests = {
        "driver": lambda v: machine.driver.kind == v or machine.driver.name == v,
        "state": lambda v: machine.state.lower() == v.lower(),
        "name": lambda v: re.search(v, machine.name) is not None,
        "label": lambda v: v in machine.engine_labels,
    }
    return all(any(tests[key](v) for v in values) for key, values in filters.items())


def _align(rows: list[str]) -> list[str]:
    cells = [row.split("\t") for row in rows]
    widths = [
        max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(max(map(len, cells)))
    ]
    return ["   ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells]
