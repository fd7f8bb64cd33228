"""`manage.py machine ACTION ...`: the docker-machine command line, on the same Operations.

This only dispatches: each ACTION lives in a module of machines/cli/, imported when chosen.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from django.core.management.base import BaseCommand, CommandError, CommandParser

from machines.cli import COMMANDS


class Command(BaseCommand):
    help = "Create and manage Docker hosts, as docker-machine did."
    # The system checks import every URL and view (and with them SSH and Docker libraries):
    # a command run many times a day skips them, `manage.py check` still runs them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        listing = "\n".join(f"  {a:<24}{h}" for a, (_, h) in COMMANDS.items() if h)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = f"actions:\n{listing}"
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            help="see and act as this dashboard user (their roles and teams)",
        )
        parser.add_argument("action", choices=COMMANDS, metavar="ACTION")
        parser.add_argument("args", nargs=argparse.REMAINDER, help="the action's arguments")

    def handle(self, *args: str, action: str, as_user: str | None = None, **options):
        # Django hands the REMAINDER ("args") over as positional arguments.
        from machines.cli.common import act_as

        module_name, help_text = COMMANDS[action]
        module = import_module(f"machines.cli.{module_name}")
        parser = CommandParser(
            prog=f"{sys.argv[0]} machine {action}",
            description=help_text,
            called_from_command_line=self._called_from_command_line,
        )
        module.add_arguments(action, parser)
        try:
            act_as(as_user)
            module.run(action, self, **vars(parser.parse_args(list(args))))
        except CommandError as e:
            # As docker-machine: the error alone on stderr, exit status 1.
            self.stderr.write(str(e))
            sys.exit(1)
