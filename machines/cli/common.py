"""What several `machine` subcommands share: finding machines by name."""

from __future__ import annotations

from django.core.management.base import CommandError

from machines.models import Machine


def get_machine(name: str) -> Machine:
    try:
        return Machine.objects.select_related("driver").get(name=name)
    except Machine.DoesNotExist:
        raise CommandError(f"Host does not exist: {name!r}") from None


def clean_only(machine: Machine, *names: str) -> None:
    """Check some of a machine's stored fields against the model's rules (a row stored
    before them, or edited behind dockerdash's back, is refused before it reaches a shell)."""
    machine.clean_fields(exclude=[f.name for f in Machine._meta.fields if f.name not in names])


def confirm(question: str, refused: str) -> None:
    answer = input(question)
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError(refused)
