"""tag: a machine's key=value tags, shown, set or removed (the model validates them)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from machines.validation import one_line

from .common import get_machine


def add_arguments(action: str, parser) -> None:
    parser.add_argument("name")
    parser.add_argument("tags", nargs="*", metavar="KEY=VALUE", help="tags to set")
    parser.add_argument(
        "--rm", action="append", default=[], metavar="KEY", help="a tag to remove (repeatable)"
    )


def run(action: str, cli, name: str, tags: list[str], rm: list[str], **_) -> None:
    from machines import live
    from machines.audit import record_tags
    from machines.forms import parse_tags

    machine = get_machine(name)
    if tags or rm:
        try:
            new = parse_tags(tags)
        except ValidationError as e:
            raise CommandError(one_line(e)) from None
        unknown = [key for key in rm if key not in machine.tags]
        if unknown:
            raise CommandError(f"{name} has no tag {', '.join(unknown)}")
        before = dict(machine.tags)
        machine.tags = {k: v for k, v in machine.tags.items() if k not in rm} | new
        try:
            machine.full_clean(exclude=[f.name for f in machine._meta.fields if f.name != "tags"])
        except ValidationError as e:
            raise CommandError(f"Invalid tags: {one_line(e)}") from None
        machine.save(update_fields=["tags"])
        record_tags(machine, before, machine.tags)
        live.machine_changed(machine)
    for tag in machine.tag_list:
        cli.stdout.write(tag)
