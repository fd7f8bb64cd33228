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


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockerdash.settings")
    from django.core.management import execute_from_command_line

    if argv and argv[0] in PASS_THROUGH:
        execute_from_command_line(["dockerdash", *argv])
    else:
        execute_from_command_line(["dockerdash", "machine", *argv])


if __name__ == "__main__":
    main()
