"""What several `machine` subcommands share: who runs them (`--as USER`), finding machines
by name."""

from __future__ import annotations

from django.core.management.base import CommandError

from machines.models import Machine
from machines.services import rights

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


def visible_machines():
    return rights.visible_machines(acting[0], Machine.objects.select_related("driver"))


def get_machine(name: str) -> Machine:
    # A machine the acting user may not see does not exist for them, as on the web (404).
    machine = visible_machines().filter(name=name).first()
    if machine is None:
        raise CommandError(f"Host does not exist: {name!r}")
    return machine


def clean_only(machine: Machine, *names: str) -> None:
    """Check some of a machine's stored fields against the model's rules (a row stored
    before them, or edited behind dockerdash's back, is refused before it reaches a shell)."""
    machine.clean_fields(exclude=[f.name for f in Machine._meta.fields if f.name not in names])


def confirm(question: str, refused: str) -> None:
    answer = input(question)
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError(refused)
