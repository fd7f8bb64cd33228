"""The errors every layer shares; their messages are shown to the user as they are."""

from __future__ import annotations


class DriverError(Exception):
    """A driver (or the provisioning after it) could not do what was asked."""


class NotSupported(DriverError):
    """The driver cannot do this action at all (never a silent no-op)."""
