"""`manage.py machine ACTION ...`: the docker-machine command line, on the same Operations.

This only dispatches: each ACTION lives in a module of machines/cli/, imported when chosen.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib import import_module

from django.core.management.base import BaseCommand, CommandError, CommandParser

from machines.cli import COMMANDS

# docker-machine's global flags that mean nothing here: accepted (scripts pass them), with
# one line saying why they change nothing.
IGNORED = {
    "native_ssh": "--native-ssh: dockerdash runs the system's ssh with the machine's pinned "
    "host key; nothing to switch",
    "tls_ca_cert": "--tls-ca-cert: dockerdash uses its own CA (or an imported machine's)",
    "tls_ca_key": "--tls-ca-key: dockerdash uses its own CA (or an imported machine's)",
    "tls_client_cert": "--tls-client-cert: dockerdash issues its own client certificates",
    "tls_client_key": "--tls-client-key: dockerdash issues its own client certificates",
    "github_api_token": "--github-api-token: dockerdash downloads nothing from GitHub",
    "bugsnag_api_token": "--bugsnag-api-token: dockerdash sends no crash reports",
}


class Command(BaseCommand):
    help = "Create and manage Docker hosts, as docker-machine did."
    # The system checks import every URL and view (and with them SSH and Docker libraries):
    # a command run many times a day skips them, `manage.py check` still runs them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        listing = "\n".join(f"  {a:<24}{h}" for a, (_, h) in COMMANDS.items() if h)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = f"actions:\n{listing}"
        group = parser.add_argument_group("docker-machine's global options")
        group.add_argument("-D", "--debug", action="store_true", help="the whole log, debug logs")
        group.add_argument(
            "-s",
            "--storage-path",
            help="where `env` and `config` keep client certificates, and the store "
            "`import-docker-machine` reads (default: $MACHINE_STORAGE_PATH)",
        )
        group.add_argument("--native-ssh", action="store_true", help="accepted, changes nothing")
        for flag in IGNORED:
            if flag != "native_ssh":
                group.add_argument(f"--{flag.replace('_', '-')}", help="accepted, ignored")
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
        self._global_options(options)
        from machines.cli.common import act_as

        module_name, help_text = COMMANDS[action]
        module = import_module(f"machines.cli.{module_name}")
        parser = CommandParser(
            prog=f"{sys.argv[0]} machine {action}",
            description=help_text,
            called_from_command_line=self._called_from_command_line,
        )
        # What was given, for an action whose options depend on it (create: the driver's).
        parser.given = list(args)
        module.add_arguments(action, parser)
        parsed = vars(parser.parse_args(list(args)))
        if options["debug"] and "verbose" in parsed:
            parsed["verbose"] = True
        try:
            act_as(as_user)
            module.run(action, self, **parsed)
        except CommandError as e:
            # As docker-machine: the error alone on stderr, exit status 1.
            self.stderr.write(str(e))
            sys.exit(1)

    def _global_options(self, options: dict) -> None:
        if options["storage_path"]:
            # docker-machine's flag and variable are one setting; the actions read the latter.
            os.environ["MACHINE_STORAGE_PATH"] = options["storage_path"]
        if options["debug"]:
            logging.getLogger().setLevel(logging.DEBUG)
        for flag, note in IGNORED.items():
            if options[flag]:
                self.stderr.write(f"Note: {note}.")
