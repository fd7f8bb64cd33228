"""The `dockerdash` command: `dockerdash ls` is `manage.py machine ls`, as docker-machine's
commands were; Django's own commands (serve, worker, migrate, ...) pass through."""

from __future__ import annotations

import contextlib
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


def execute(argv: list[str]) -> None:
    """Run a command line (manage.py's and dockerdash's). The `machine` commands end their
    process at once when done: the interpreter's tear-down of a thousand modules would
    add a tenth of a second or more to every `machine ls`, which docker-machine never had."""
    from django.core.management import execute_from_command_line

    if argv[1:2] != ["machine"]:
        execute_from_command_line(argv)
        return
    # Live pushes from this process reach nobody with the in-memory layer (live.publish).
    os.environ["DOCKERDASH_CLI_PROCESS"] = "1"
    try:
        execute_from_command_line(argv)
        code = 0
    except SystemExit as e:
        if isinstance(e.code, str):
            sys.stderr.write(f"{e.code}\n")
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BrokenPipeError:
        code = 141  # `machine ls | head`: the reader left, as a shell reports SIGPIPE
    _exit_now(code)


def _exit_now(code: int) -> None:
    from django.db import connections

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    connections.close_all()
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _remote(argv):
        from dockerdash.client import run

        sys.exit(run(argv))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockerdash.settings")
    if argv and argv[0] in PASS_THROUGH:
        execute(["dockerdash", *argv])
    else:
        execute(["dockerdash", "machine", *argv])


if __name__ == "__main__":
    main()
