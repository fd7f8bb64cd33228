"""What `machine ls`, `env` and `config` print, from plain values: the server's command line
(rows from the database) and the remote `dockerdash` client (rows from the API) print
through these same functions, so their output is the same. No Django here."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

from machines.lib import shellquote

# One machine as ls sees it: name, driver (kind and configured name), state (its label),
# url, ip, docker_version, last_error, response_time_ms, tags (dict), engine_labels (list).
Row = dict

LS_FIELDS: dict[str, Callable[[Row], str]] = {
    "Name": lambda m: m["name"],
    "Active": lambda m: "*" if is_active(m) else "-",
    "DriverName": lambda m: m["driver"],
    "State": lambda m: m["state"],
    "URL": lambda m: m["url"],
    "DockerVersion": lambda m: m["docker_version"] or "Unknown",
    "Error": lambda m: m["last_error"],
    "ResponseTime": lambda m: (
        f"{m['response_time_ms']}ms" if m["response_time_ms"] is not None else ""
    ),
    "IP": lambda m: m["ip"],
    "Tags": lambda m: ",".join(f"{k}={v}" if v else k for k, v in sorted(m["tags"].items())),
}
LS_DEFAULT = (
    "table {{.Name}}\t{{.Active}}\t{{.DriverName}}\t{{.State}}\t{{.URL}}"
    "\t{{.DockerVersion}}\t{{.Error}}"
)
HEADERS = {
    "DriverName": "DRIVER",
    "DockerVersion": "DOCKER",
    "Error": "ERRORS",
    "ResponseTime": "RESPONSE",
}
FIELD_RE = re.compile(r"{{\s*\.(\w+)\s*}}")
FILTER_KEYS = ("driver", "state", "name", "label", "tag")


def is_active(row: Row) -> bool:
    return bool(row["url"]) and os.getenv("DOCKER_HOST", "") == row["url"]


def render_ls(rows: list[Row], quiet: bool, format: str) -> str:
    """docker-machine's ls table or --format; ValueError names an unknown field."""
    if quiet:
        format = "{{.Name}}"
    template = (format or LS_DEFAULT).encode().decode("unicode_escape")
    table = template.startswith("table ")
    if table:
        template = template.removeprefix("table ")
    for name in FIELD_RE.findall(template):
        if name not in LS_FIELDS:
            raise ValueError(f"Unknown field {name!r} in --format (known: {', '.join(LS_FIELDS)})")
    lines = []
    if table:
        lines.append(FIELD_RE.sub(lambda m: HEADERS.get(m[1], m[1].upper()), template))
    for row in rows:
        lines.append(FIELD_RE.sub(lambda m, row=row: str(LS_FIELDS[m[1]](row)), template))
    if table:
        lines = align(lines)
    return "\n".join(lines)


def inspect_text(doc: dict, template: str = "") -> str:
    """`inspect`'s JSON, or a Go template executed on it as docker-machine did (on the JSON
    read back into plain maps, lists and numbers); ValueError is the template's error."""
    if not template:
        return json.dumps(doc, indent=4)
    from machines.lib.gotemplate import TemplateError, render

    try:
        return render(template, json.loads(json.dumps(doc)))
    except TemplateError as e:
        raise ValueError(str(e).replace("\n", " ")) from None


def align(rows: list[str]) -> list[str]:
    cells = [row.split("\t") for row in rows]
    widths = [
        max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(max(map(len, cells)))
    ]
    return ["   ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells]


def parse_filters(items: list[str], check_tag: Callable[[str], object]) -> dict[str, list[str]]:
    """--filter key=value items by key; ValueError in the command's words."""
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in FILTER_KEYS:
            raise ValueError(
                f"Unsupported filter {item!r} (use driver=, state=, name=, label=, tag=)"
            )
        if key == "tag":
            try:
                check_tag(value)
            except ValueError as e:
                raise ValueError(f"Unsupported filter {item!r}: {e}") from None
        filters.setdefault(key, []).append(value)
    return filters


def matches(row: Row, filters: dict[str, list[str]]) -> bool:
    tests = {
        "driver": lambda v: v in (row["driver"], row["driver_name"]),
        "state": lambda v: row["state"].lower() == v.lower(),
        "name": lambda v: re.search(v, row["name"]) is not None,
        "label": lambda v: v in row["engine_labels"],
        "tag": lambda v: _has_tag(row, v),
    }
    return all(any(tests[key](v) for v in values) for key, values in filters.items())


def _has_tag(row: Row, wanted: str) -> bool:
    """tag=key=value: that value; tag=key: any value."""
    key, sep, value = wanted.partition("=")
    return key in row["tags"] and (not sep or row["tags"][key] == value)


# -- env and config ------------------------------------------------------------------------


class EnvError(ValueError):
    """What stops `env` (a missing name, a value a shell cannot take), in the CLI's words."""


def env_text(
    shell: str,
    *,
    unset: bool,
    with_no_proxy: bool,
    name: str | None,
    connect: Callable[[str], tuple[str, str, str]],
    argv: list[str],
) -> str:
    """docker-machine's env output: `connect(name)` gives the machine's (url, cert folder,
    ip), locally or through the API; the variables set (or unset) and the usage hint."""
    shell = shell or detect_shell()
    values = dict.fromkeys(
        ("DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_MACHINE_NAME"), ""
    )
    ip = ""
    if unset:
        if name:
            raise EnvError("Error: Expected no machine name when the -u flag is present")
    else:
        if not name:
            raise EnvError("Error: Expected one machine name")
        url, folder, ip = connect(name)
        values = {
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_HOST": url,
            "DOCKER_CERT_PATH": folder,
            "DOCKER_MACHINE_NAME": name,
        }
    if with_no_proxy:
        var, value = no_proxy(ip)
        values[var] = "" if unset else value
    try:
        lines = [
            shellquote.unset_line(shell, k) if unset else shellquote.set_line(shell, k, v)
            for k, v in values.items()
        ]
    except ValueError as e:
        raise EnvError(f"Cannot write the environment for {shell}: {e}") from None
    return "".join(lines) + usage_hint(shell, argv)


def config_text(folder: str, url: str) -> str:
    return (
        f"--tlsverify --tlscacert={json.dumps(os.path.join(folder, 'ca.pem'))} "
        f"--tlscert={json.dumps(os.path.join(folder, 'cert.pem'))} "
        f"--tlskey={json.dumps(os.path.join(folder, 'key.pem'))} -H={url}"
    )


def detect_shell() -> str:
    name = os.path.basename(os.getenv("SHELL", ""))
    if name == "fish":
        return "fish"
    if name in ("tcsh", "csh"):
        return "tcsh"
    return "bash"


def no_proxy(ip: str) -> tuple[str, str]:
    """docker-machine's --no-proxy: the machine's IP added to no_proxy (or NO_PROXY) once."""
    var, value = "no_proxy", os.getenv("no_proxy", "")
    if not value:
        var, value = "NO_PROXY", os.getenv("NO_PROXY", "")
    if ip and not value:
        value = ip
    elif ip and ip not in value:
        value = f"{value},{ip}"
    return var, value


def usage_hint(shell: str, argv: list[str]) -> str:
    """docker-machine's closing comment: how to load this output into the shell."""
    argv = list(argv)
    if os.path.basename(argv[0]) == "manage.py":
        argv[0] = f"python {argv[0]}"
    elif " " in argv[0] or "\\" in argv[0]:
        argv[0] = f'"{argv[0]}"'
    line = " ".join(argv)
    comment, cmd = "#", f"eval $({line})"
    if shell == "fish":
        cmd = f"eval ({line})"
    elif shell == "powershell":
        cmd = f"& {line} | Invoke-Expression"
    elif shell == "cmd":
        comment, cmd = "REM", f"\t@FOR /f \"tokens=*\" %i IN ('{line}') DO @%i"
    elif shell == "emacs":
        comment = ";;"
        cmd = f'(with-temp-buffer (shell-command "{line}" (current-buffer)) (eval-buffer))'
    elif shell == "tcsh":
        comment, cmd = ":", f"eval `{line}`"
    return f"{comment} Run this command to configure your shell: \n{comment} {cmd}\n"
