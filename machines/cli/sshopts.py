"""The ssh options `machine ssh NAME [options] [command]` passes on, as docker-machine did:
only a vetted list (forwarding, terminal, compression, agent, verbosity), each argument
checked whole. Options that choose what ssh runs or trusts here (-o, -F, -i, -J, -W, -w,
-e, ProxyCommand ...) stay refused: the dashboard's pinned key and files are the only ones."""

from __future__ import annotations

import re

from django.core.management.base import CommandError

# Options without an argument, and options taking one (a forwarding spec).
FLAGS = frozenset("ACNtTqv")
WITH_VALUE = frozenset("LRD")
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
_BIND = rf"(?:(?:{_HOST}|\*)?:)?"
_PORT = r"(?:[1-9][0-9]{0,4})"
SPECS = {
    # -L / -R [bind_address:]port:host:hostport; -R [bind_address:]port (a remote SOCKS);
    # -D [bind_address:]port. Nothing else: no spaces, no '=', no leading '-', no path.
    "L": re.compile(rf"{_BIND}{_PORT}:{_HOST}:{_PORT}"),
    "R": re.compile(rf"{_BIND}{_PORT}(?::{_HOST}:{_PORT})?"),
    "D": re.compile(rf"{_BIND}{_PORT}"),
}
ALLOWED = "-L, -R, -D (with a forwarding spec), -A, -C, -N, -t, -T, -q, -v"


def split(args: list[str]) -> tuple[list[str], list[str]]:
    """(ssh options, remote command): the options come first, each vetted; the first
    argument that is not an option starts the command (all of it goes to the host)."""
    options: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        arg = args[i]
        if arg == "--":
            return options, args[i + 1 :]
        letters = arg[1:]
        if letters[0] in WITH_VALUE:
            value = letters[1:]
            if not value:
                i += 1
                if i == len(args):
                    raise CommandError(f"ssh option -{letters[0]} needs a value")
                value = args[i]
            options += [f"-{letters[0]}", _checked(letters[0], value)]
        elif set(letters) <= FLAGS:
            options += [f"-{c}" for c in letters]
        else:
            raise CommandError(
                f"ssh option {arg[:40]!r} is not passed on (allowed: {ALLOWED}); the machine's "
                "key, host key and ssh configuration are dockerdash's"
            )
        i += 1
    return options, args[i:]


def _checked(option: str, value: str) -> str:
    if not SPECS[option].fullmatch(value) or not _ports_ok(value):
        raise CommandError(
            f"ssh option -{option} {value[:60]!r} is not a forwarding spec "
            + ("([bind_address:]port)" if option == "D" else "([bind_address:]port:host:hostport)")
        )
    return value


def _ports_ok(value: str) -> bool:
    ports = [p for p in re.split(r"[:\[\]]", value) if p.isdigit() and len(p) <= 5]
    return all(0 < int(p) < 65536 for p in ports)
