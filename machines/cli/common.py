"""What several `machine` subcommands share: who runs them (`--as USER`), finding machines
by name, asking, the program's name in docker-machine's messages."""

from __future__ import annotations

import os
import sys

from django.core.management.base import CommandError

from machines.models import Driver, Machine
from machines.services import rights

# docker-machine's libmachine/drivers.ErrHostIsNotRunning: scripts grep for these words.
HOST_NOT_RUNNING = "Host is not running"

# `manage.py machine --as USER ...`: the command sees and does what USER may (teams and
# roles, machines/services/rights.py); without it, None: the server's own operator.
acting = [None]


def act_as(username: str | None) -> None:
    from django.contrib.auth import get_user_model

    if not username:
        acting[0] = None
        return
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"No active user named {username!r}.")
    acting[0] = user


def acting_user():
    return acting[0]


def visible_machines(machines=None):
    """The machines the acting user may see (all of them for the server's operator)."""
    if machines is None:
        machines = Machine.objects.select_related("driver")
    return rights.visible_machines(acting[0], machines)


def program() -> str:
    """How the user called us, for the commands docker-machine's messages name
    ("docker-machine ls" becomes "dockerdash ls" or "manage.py machine ls")."""
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    return "manage.py machine" if name == "manage.py" else "dockerdash"


def not_found(name: str) -> CommandError:
    # docker-machine's mcnerror.ErrHostDoesNotExist, word for word but the program's name.
    prog = program()
    return CommandError(
        f'Docker machine "{name}" does not exist. Use "{prog} ls" to list machines. '
        f'Use "{prog} create" to add a new one.'
    )


def get_machine(name: str, secrets: bool = True) -> Machine:
    """The machine named; without its secrets (not decrypted, for stored-state commands)
    unless asked for."""
    # A machine the acting user may not see does not exist for them, as on the web (404).
    machines = visible_machines(None if secrets else listed_machines())
    try:
        return machines.get(name=name)
    except Machine.DoesNotExist:
        raise not_found(name) from None


def running(machine: Machine) -> Machine:
    """The machine, if it was last seen running (docker-machine's url and version ask the
    host; we read the stored state, which the health checks keep current)."""
    if machine.state != Machine.State.RUNNING:
        raise CommandError(HOST_NOT_RUNNING)
    return machine


def clean_only(machine: Machine, *names: str) -> None:
    """Check some of a machine's stored fields against the model's rules (a row stored
    before them, or edited behind dockerdash's back, is refused before it reaches a shell)."""
    machine.clean_fields(exclude=[f.name for f in Machine._meta.fields if f.name not in names])


def confirm(question: str, refused: str) -> None:
    """Ask; anything but yes is no. Without a terminal (stdin closed or a file at its end)
    there is no answer, which is no too: said in one sentence, never a traceback."""
    try:
        answer = input(question)
    except EOFError:
        raise CommandError(f"{refused}: no answer came (no terminal to ask).") from None
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError(refused)


def listed_machines():
    """Machines with what a listing shows: no secret is read (and so decrypted)."""
    from machines.fields import EncryptedTextField

    def secret(model) -> list[str]:
        return [f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)]

    return Machine.objects.select_related("driver").defer(
        *secret(Machine), *(f"driver__{name}" for name in secret(Driver))
    )
