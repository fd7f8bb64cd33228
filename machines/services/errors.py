"""What a service refuses because of what it was given; its message is shown as it is."""

from __future__ import annotations


class InvalidInput(Exception):
    """The input cannot be used (a driver's options, its account's settings, a tag...)."""
