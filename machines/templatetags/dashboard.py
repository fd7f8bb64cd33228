"""Template filters of the dashboard: a machine's action buttons, and relative times that a
tiny script keeps ticking.

The page renders "12 s ago" with the exact time in the `datetime` attribute (and on hover);
static/js/dockerdash.js recomputes the same text from that attribute every few seconds, so
a page left open stays right between pushes. Both use the format of `compact_duration`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from machines.lib import shellquote
from machines.lib.shellquote import HOME

register = template.Library()


@register.filter
def actions(machine, where: str = "buttons") -> list[dict]:
    """The operator actions that apply to this machine now (its driver can, its state allows
    them), for its buttons ("buttons") or its "more actions" menu ("menu"), from the one
    declaration in operations.ACTIONS."""
    from machines.operations.actions import BUTTONS

    return [
        {
            "kind": action.kind,
            "label": action.label,
            "confirm": action.confirm.format(name=machine.name),
        }
        for action in BUTTONS.values()
        if action.in_menu == (where == "menu") and action.allowed(machine)
    ]


@register.filter
def split(text: str) -> list[str]:
    return text.split()


@register.filter
def get(mapping, key: str):
    """mapping[key] (a QueryDict's last value), or "" when missing."""
    return mapping.get(key, "") if hasattr(mapping, "get") else ""


@register.filter
def page_link(filter_form, number: int) -> str:
    """The query string of another page of a filtered list (machines.listing)."""
    return filter_form.page_link(number)


@register.filter
def create_failed(machine) -> bool:
    """Whether the machine's create did not succeed and may be run again (a retry)."""
    from machines.models import Operation
    from machines.operations.actions import ACTIONS

    last = machine.operations.filter(kind=Operation.Kind.CREATE).order_by("-created_at").first()
    ended_badly = last is not None and last.status in ("failed", "interrupted", "cancelled")
    return ended_badly and not ACTIONS[Operation.Kind.CREATE].refusal(machine)


def compact_duration(seconds: float) -> str:
    """12 s, 5 min, 3 h, 4 d: dense enough for a table cell (the same in dockerdash.js)."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _time(t: datetime, text: str, kind: str) -> str:
    local = timezone.localtime(t)
    return format_html(
        '<time class="{}" datetime="{}" title="{}">{}</time>',
        kind,
        t.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        text,
    )


@register.filter
def ago(t: datetime | None) -> str:
    """`<time>` reading "12 s ago", the exact time on hover; "never" for None."""
    if not t:
        return mark_safe('<span class="muted">never</span>')
    return _time(t, f"{compact_duration((timezone.now() - t).total_seconds())} ago", "ago")


def _since(t: datetime) -> str:
    return _time(t, compact_duration((timezone.now() - t).total_seconds()), "for")


# Docker's own words for durations (go-units HumanDuration), as seconds.
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_UNITS |= {"month": 30 * 86400, "year": 365 * 86400}
_DURATION = re.compile(r"(?:(\d+)|an?|about an?) (second|minute|hour|day|week|month|year)s?")
_UP = re.compile(r"Up (.+?)( \(.+\))?")
_AGO = re.compile(r"((?:Exited|Restarting) \(-?\d+\)) (.+) ago")


def _docker_duration(text: str) -> timedelta | None:
    text = text.strip().lower()
    if text == "less than a second":
        return timedelta(0)
    m = _DURATION.fullmatch(text)
    if not m:
        return None
    return timedelta(seconds=int(m[1] or 1) * _UNITS[m[2]])


@register.filter
def docker_status(container) -> str:
    """Docker's status ("Up 3 minutes (healthy)") with its duration kept current.

    The status text is what the engine said when the row was stored (updated_at); shown as
    is it would read "Up Less than a second" for as long as nothing else changes.
    """
    status = container.status or ""
    observed = container.updated_at or timezone.now()
    if m := _UP.fullmatch(status):
        duration = _docker_duration(m[1])
        if duration is not None:
            return format_html("Up {}{}", _since(observed - duration), m[2] or "")
    elif m := _AGO.fullmatch(status):
        duration = _docker_duration(m[2])
        if duration is not None:
            return format_html("{} {} ago", m[1], _since(observed - duration))
    return status


# -- the Connect panel's copy-paste snippets ---------------------------------------------
# Written by machines.shellquote, as `machine env` writes them, with the certificates under
# the user's $HOME (where the zip is unpacked) instead of this server's folder.


def _pre_text(text: str) -> str:
    """Text for the inside of <pre>/<code>: '&', '<' and '>' escaped, which is all element
    text needs; the shell's quotes stay as they are in the page's source (these tags are
    never used inside an attribute)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return mark_safe(escaped)  # noqa: S308 - escaped for element text just above


def _cert_path(machine, shell: str) -> tuple:
    sep = "\\" if shell == "powershell" else "/"
    return (HOME, sep.join(["", ".docker", "dockerdash", machine.name]))


def _snippet(build) -> str:
    try:
        return _pre_text(build().rstrip("\n"))
    except ValueError as e:
        return _pre_text(f"(cannot be written safely for this shell: {e})")


@register.simple_tag
def connect_env(machine, shell: str, host_only: bool = False) -> str:
    """The lines pointing the docker CLI at the machine, for bash/zsh, fish or PowerShell."""

    def build() -> str:
        if host_only:
            return shellquote.set_line(shell, "DOCKER_HOST", machine.url)
        return "".join(
            shellquote.set_line(shell, key, *value)
            for key, value in (
                ("DOCKER_TLS_VERIFY", ("1",)),
                ("DOCKER_HOST", (machine.url,)),
                ("DOCKER_CERT_PATH", _cert_path(machine, shell)),
                ("DOCKER_MACHINE_NAME", (machine.name,)),
            )
        )

    return _snippet(build)


@register.simple_tag
def connect_context(machine) -> str:
    """`docker context create` and `use` for the machine (a POSIX shell)."""

    def build() -> str:
        (home, path), name = _cert_path(machine, "bash"), shellquote.word("bash", machine.name)
        spec: list = [f"host={machine.url}"]
        for file in ("ca", "cert", "key"):
            spec += [f",{file}=", home, f"{path}/{file}.pem"]
        docker = shellquote.quote("bash", *spec)
        return f"docker context create {name} --docker {docker}\ndocker context use {name}"

    return _snippet(build)


@register.simple_tag
def connect_unzip(machine) -> str:
    """Unpacking the client certificates' zip where the snippets expect them."""

    def build() -> str:
        folder = shellquote.quote("bash", *_cert_path(machine, "bash"))
        archive = shellquote.word("bash", f"{machine.name}-certs.zip")
        return f"mkdir -p {folder} && unzip -o {archive} -d {folder}"

    return _snippet(build)


@register.filter
def sees_every_machine(user) -> bool:
    """A global role (the fleet-wide pages such as the alerts'), not only teams' roles."""
    from machines.services.rights import sees_all

    return bool(getattr(user, "is_authenticated", False)) and sees_all(user)
