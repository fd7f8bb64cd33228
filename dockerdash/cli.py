"""The `dockerdash` command: `dockerdash ls` is `manage.py machine ls`, as docker-machine's
commands were; Django's own commands (serve, worker, migrate, ...) pass through."""

from __future__ import annotations

import os
import sys

PASS_THROUGH = {
    "serve",
    "worker",
    "migrate",
    "createadmin",
    "build_host_image",
    "rotate_field_keys",
    "check",
    "shell",
    "help",
    # Unlocking logins (django-axes).
    "axes_reset",
    "axes_reset_username",
    "axes_reset_ip",
    "axes_list_attempts",
}


def _remote(argv: list[str]) -> bool:
    """Client mode: `login`, and every machine command once logged in (a saved token, or
    DOCKERDASH_URL and DOCKERDASH_TOKEN); DOCKERDASH_LOCAL=1 keeps the server-local CLI."""
    if not argv or os.environ.get("DOCKERDASH_LOCAL") == "1":
        return False
    from dockerdash.client import COMMANDS, SERVER_LOCAL
    from dockerdash.client.api import load_login

    if argv[0] == "login":
        return True
    return argv[0] in COMMANDS | SERVER_LOCAL.keys() and load_login() is not None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _remote(argv):
        from dockerdash.client import run

        sys.exit(run(argv))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockerdash.settings")
    from django.core.management import execute_from_command_line

    if argv and argv[0] in PASS_THROUGH:
        execute_from_command_line(["dockerdash", *argv])
    else:
        execute_from_command_line(["dockerdash", "machine", *argv])


if __name__ == "__main__":
    main()
