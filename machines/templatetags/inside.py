"""Template filters for what happens inside engines: sizes as docker prints them (KiB, MiB,
GiB), CPU percentages, durations of terminal sessions."""

from __future__ import annotations

from django import template

register = template.Library()

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@register.filter
def iec(value) -> str:
    """1536 -> "1.5 KiB", as `docker stats` and `docker images` print sizes."""
    try:
        size = float(value)
    except (TypeError, ValueError):
        return "—"
    for unit in UNITS:
        if abs(size) < 1024 or unit == UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "—"


@register.filter
def percent(value) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} %"


@register.filter
def seconds(duration) -> str:
    """A timedelta as "1 h 02 min 05 s" (terminal sessions in the audit log)."""
    if duration is None:
        return ""
    total = int(duration.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
