"""Values written for the shells `machine env` supports and the machine page's snippets use.

Validation keeps engine URLs, addresses and names to harmless characters already; this is
the second line: whatever a value holds, a shell reading the output gets it as one literal
value and runs nothing. Values that look like docker-machine's keep its exact output
(`export DOCKER_HOST="tcp://..."`); others are quoted the strict way each shell allows, and a
value no quoting makes safe there (a line break; most punctuation for cmd.exe) raises
ValueError rather than be written. No Django here: the CLI and a template filter share it.
"""

from __future__ import annotations

import re

SHELLS = ("bash", "fish", "powershell", "cmd", "tcsh", "emacs")


class _Home:
    """The user's home folder, left for the shell to expand (page snippets)."""

    def __repr__(self) -> str:
        return "HOME"


HOME = _Home()
Part = str | _Home

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
# Characters each shell treats specially inside "double quotes" (PowerShell also takes the
# typographic quotes for quotes).
_SPECIAL_IN_DOUBLE = {
    "bash": '"\\$`!',
    "fish": '"\\$',
    "tcsh": "\"\\$`!'",
    "powershell": '"`$\u201c\u201d\u201e',
}
_POWERSHELL_SINGLE = "'\u2018\u2019\u201a\u201b"
_CMD_SAFE = re.compile(r"[A-Za-z0-9 _.,:/\\@+=~#{}\[\]-]*")
# tcsh's ``eval `machine env` `` splits the output into words and expands braces, globs and
# ~ in them before eval sees the quotes: such characters cannot be quoted for it.
_TCSH_UNSAFE = re.compile(r"[{}*?\[\]~]")
_HOME_REF = {"bash": "$HOME", "fish": "$HOME", "tcsh": "$HOME", "powershell": "$HOME"}


def _check(parts: tuple[Part, ...], shell: str) -> None:
    if shell not in SHELLS:
        raise ValueError(f"Unknown shell {shell!r} (known: {', '.join(SHELLS)})")
    for part in parts:
        if isinstance(part, _Home):
            if shell not in _HOME_REF:
                raise ValueError(f"A path under $HOME cannot be written for {shell}")
        elif _CONTROL.search(part):
            raise ValueError(f"{part!r} contains a line break or another control character")


def _double_quoted(parts: tuple[Part, ...], shell: str) -> str | None:
    """docker-machine's "value" form, when no character in it means anything there."""
    special = _SPECIAL_IN_DOUBLE[shell]
    out = []
    for i, part in enumerate(parts):
        if isinstance(part, _Home):
            following = parts[i + 1] if i + 1 < len(parts) else ""
            # "$HOMEx" or PowerShell's "$HOME:x" would name another variable.
            if isinstance(following, _Home) or re.match(r"[A-Za-z0-9_:\[]", following):
                return None
            out.append(_HOME_REF[shell])
        elif any(c in special for c in part):
            return None
        else:
            out.append(part)
    return '"' + "".join(out) + '"'


def _single_quoted(text: str, shell: str) -> str:
    if shell == "bash":
        return "'" + text.replace("'", "'\\''") + "'"
    if shell == "fish":
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if shell == "tcsh":
        # csh expands history (!) even inside single quotes unless escaped.
        return "'" + text.replace("'", "'\\''").replace("!", "\\!") + "'"
    if shell == "powershell":
        return "'" + "".join(c + c if c in _POWERSHELL_SINGLE else c for c in text) + "'"
    raise ValueError(shell)


def quote(shell: str, *parts: Part) -> str:
    """One shell word (PowerShell: one expression) whose value is the parts joined."""
    _check(parts, shell)
    text = "".join(p for p in parts if isinstance(p, str))  # HOME: refused for these two
    if shell == "emacs":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if shell == "cmd":
        if not _CMD_SAFE.fullmatch(text):
            raise ValueError(f"{text!r} cannot be written safely for cmd.exe")
        return text
    if shell == "tcsh" and _TCSH_UNSAFE.search(text):
        raise ValueError(f"{text!r} cannot be written safely for tcsh (braces, globs or ~)")
    if (double := _double_quoted(parts, shell)) is not None:
        return double
    words = [
        f'"{_HOME_REF[shell]}"' if isinstance(p, _Home) else _single_quoted(p, shell)
        for p in parts
        if p != ""
    ]
    if shell == "powershell":
        return "(" + " + ".join(words) + ")" if len(words) > 1 else words[0] if words else "''"
    return "".join(words) or "''"


def word(shell: str, *parts: Part) -> str:
    """An argument as a user would type it: bare when it needs no quotes (posix shells)."""
    _check(parts, shell)
    literal = all(isinstance(p, str) for p in parts)
    text = "".join(p for p in parts if isinstance(p, str))
    bare = literal and _BARE.fullmatch(text) and not text.startswith("-")
    if bare and shell in ("bash", "fish", "tcsh"):
        return text
    return quote(shell, *parts)


def _name(key: str) -> str:
    if not _NAME.fullmatch(key):
        raise ValueError(f"{key!r} is not an environment variable name")
    return key


def set_line(shell: str, key: str, *value: Part) -> str:
    """The line setting one environment variable, as docker-machine's env wrote it."""
    q = quote(shell, *value)
    key = _name(key)
    return {
        "bash": f"export {key}={q}\n",
        "fish": f"set -gx {key} {q};\n",
        "tcsh": f"setenv {key} {q};\n",
        "powershell": f"$Env:{key} = {q}\n",
        "cmd": f"SET {key}={q}\n",
        "emacs": f'(setenv "{key}" {q})\n',
    }[shell]


def unset_line(shell: str, key: str) -> str:
    key = _name(key)
    return {
        "bash": f"unset {key}\n",
        "fish": f"set -e {key};\n",
        "tcsh": f"unsetenv {key};\n",
        "powershell": f"Remove-Item Env:\\\\{key}\n",
        "cmd": f"SET {key}=\n",
        "emacs": f'(setenv "{key}" nil)\n',
    }[shell]
