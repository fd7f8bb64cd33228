"""start, stop, restart, kill, provision, upgrade, regenerate-certs, rm: one operation per
machine named, each followed to its end (as docker-machine, which ran them in turn); cancel:
the operation under way on each machine named, stopped."""

from __future__ import annotations

import sys

from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError

from machines.cli.common import acting_user, confirm, get_machine
from machines.cli.follow import follow
from machines.models import Machine, Operation


def add_arguments(action: str, parser) -> None:
    parser.add_argument("names", nargs="+")
    if action == "regenerate-certs":
        parser.add_argument(
            "-f", "--force", action="store_true", help="do not ask for confirmation"
        )
        parser.add_argument(
            "--client-certs", action="store_true", help="also make a new CA and client certificate"
        )
    if action == "rm":
        parser.add_argument("-y", action="store_true", help="do not ask for confirmation")
        parser.add_argument(
            "-f",
            "--force",
            action="store_true",
            help="do not ask, and forget even if removal fails (as docker-machine's -f)",
        )
        parser.add_argument(
            "--purge",
            action="store_true",
            help="first undo dockerdash's Docker configuration on a host that stays",
        )
    if action != "cancel":
        parser.add_argument("-v", "--verbose", action="store_true", help="stream the whole log")


def run(action: str, cli, names: list[str], verbose: bool = False, **options) -> None:
    if action == "cancel":
        _cancel(cli, names)
    elif action == "rm":
        _remove(cli, names, verbose, **options)
    elif action == "regenerate-certs":
        _regenerate(cli, names, verbose, **options)
    else:
        _each(cli, action, names, verbose)


def _each(cli, kind: str, names: list[str], verbose: bool, args: dict | None = None):
    from machines.operations import runner
    from machines.services import machines as services

    # An operation whose runner died no longer holds its machine busy.
    runner.interrupt_stale(refresh=False)
    failed = False
    for name in names:
        machine = get_machine(name)
        try:
            op = services.request_action(acting_user(), machine, kind, via="cli", args=args)
        except (services.OperationConflict, PermissionDenied) as e:
            cli.stderr.write(str(e))
            failed = True
            continue
        try:
            follow(cli, op, verbose)
        except CommandError as e:
            cli.stderr.write(str(e))
            failed = True
    if failed:
        sys.exit(1)


def _cancel(cli, names: list[str]) -> None:
    """A pending operation ends at once; a running one at its next step (waited for here:
    Ctrl-C stops waiting only). Exit 1 when one was not cancelled."""
    from machines.cli.follow import wait_until_ended
    from machines.operations import runner
    from machines.services import machines as services

    runner.interrupt_stale(refresh=False)
    failed = False
    for name in names:
        op = get_machine(name).active_operation
        if op is None:
            cli.stderr.write(f"{name} has no operation under way.")
            failed = True
            continue
        try:
            services.cancel_operation(acting_user(), op)
        except PermissionDenied as e:
            cli.stderr.write(str(e))
            failed = True
            continue
        if op.status == Operation.Status.RUNNING:
            cli.stdout.write(f"The {op.kind} of {name} stops at the end of its current step...")
        try:
            wait_until_ended(op)
        except KeyboardInterrupt:
            cli.stderr.write(f"\nStopped waiting: the {op.kind} of {name} stops at its next step.")
            sys.exit(130)
        if op.status == Operation.Status.CANCELLED:
            cli.stdout.write(f"Cancelled the {op.kind} of {name}")
        else:
            cli.stderr.write(f"The {op.kind} of {name} ended {op.status} before it could stop")
            failed = True
    if failed:
        sys.exit(1)


def _remove(cli, names, verbose, y: bool, force: bool, purge: bool, **_):
    for name in names:
        get_machine(name)  # fail early on a typo
    if not (y or force):
        confirm(f"About to remove {', '.join(names)}\nAre you sure? (y/n): ", "Remove cancelled")
    _each(cli, Operation.Kind.REMOVE, names, verbose, args={"force": force, "purge": purge})
    for name in names:
        if not Machine.objects.filter(name=name).exists():
            cli.stdout.write(f"Successfully removed {name}")


def _regenerate(cli, names, verbose, force: bool, client_certs: bool, **_):
    for name in names:
        get_machine(name)
    if not force:
        confirm(
            "Regenerate TLS machine certs?  Warning: this is irreversible. (y/n): ",
            "Regenerating the certificates cancelled",
        )
    kind = Operation.Kind.REGENERATE_CERTS
    if client_certs and len(names) > 1:
        # One new CA, not one per machine: the first makes it, the others use it.
        _each(cli, kind, names[:1], verbose, args={"client_certs": True})
        names, client_certs = names[1:], False
    _each(cli, kind, names, verbose, args={"client_certs": client_certs})
