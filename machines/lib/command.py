"""A program run to its end with a time limit, its output kept (never a shell)."""

from __future__ import annotations

import subprocess

from machines.lib.errors import DriverError


def run(args: list[str], *, env: dict[str, str], timeout: float, what: str, stdin: str = ""):
    """The finished process (whatever its exit status); DriverError once `timeout` passes."""
    try:
        return subprocess.run(
            args,
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DriverError(f"{what} did not finish in {timeout:g} s") from None
