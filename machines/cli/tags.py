"""tag: a machine's key=value tags, shown, set or removed (the model validates them)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from machines.cli.common import get_machine
from machines.validation import one_line, parse_tags


def add_arguments(action: str, parser) -> None:
    parser.add_argument("name")
    parser.add_argument("tags", nargs="*", metavar="KEY=VALUE", help="tags to set")
    parser.add_argument(
        "--rm", action="append", default=[], metavar="KEY", help="a tag to remove (repeatable)"
    )


def run(action: str, cli, name: str, tags: list[str], rm: list[str], **_) -> None:
    from machines.services import machines as services

    machine = get_machine(name)
    if tags or rm:
        try:
            services.edit_tags(None, machine, add=parse_tags(tags), remove=rm)
        except ValidationError as e:
            raise CommandError(one_line(e)) from None
        except services.InvalidInput as e:
            raise CommandError(str(e)) from None
    for tag in machine.tag_list:
        cli.stdout.write(tag)
