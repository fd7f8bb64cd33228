"""One file of a git repository at a branch, fetched with the git command line (a shallow
clone into a private temporary folder, deleted after): a stack's compose file.

An ssh:// repository is reached with a deploy key written for the one command (mode 0600,
deleted after it); nothing prompts (no terminal), and the key is never logged.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path

from machines.lib import command
from machines.lib.errors import DriverError

TIMEOUT = 60
MAX_BYTES = 1024 * 1024


def fetch_file(url: str, branch: str, path: str, *, key: str = "", folder: str) -> str:
    """The text of `path` in `url` at `branch`; DriverError in one sentence otherwise."""
    work = Path(tempfile.mkdtemp(prefix="git-", dir=folder))
    try:
        env = {"PATH": os.environ.get("PATH", ""), "GIT_TERMINAL_PROMPT": "0", "HOME": str(work)}
        if key:
            key_file = work / "key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key.strip() + "\n")
            env["GIT_SSH_COMMAND"] = shlex.join(
                [
                    "ssh",
                    "-i",
                    str(key_file),
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "StrictHostKeyChecking=accept-new",
                    "-o",
                    f"UserKnownHostsFile={work / 'known_hosts'}",
                ]
            )
        clone = work / "repo"
        _clone(url, branch, clone, env)
        target = (clone / path).resolve()
        if not target.is_relative_to(clone.resolve()) or not target.is_file():
            raise DriverError(f"{path} is not a file in {url} ({branch})")
        if target.stat().st_size > MAX_BYTES:
            raise DriverError(f"{path} in {url} is larger than {MAX_BYTES // 1024} KiB")
        return target.read_text(errors="replace")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _clone(url: str, branch: str, clone: Path, env: dict[str, str]) -> None:
    shallow = ["--depth", "1"]
    while True:
        args = ["git", "clone", "--quiet", *shallow, "--single-branch", "--branch", branch]
        done = command.run(
            [*args, "--", url, str(clone)], env=env, timeout=TIMEOUT, what=f"Fetching {url}"
        )
        # A plain web server (git's "dumb" HTTP) cannot give one commit only: take the branch.
        if done.returncode and shallow and "does not support shallow" in done.stderr:
            shutil.rmtree(clone, ignore_errors=True)
            shallow = []
            continue
        break
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1].removeprefix("fatal: ") if lines else f"exit {done.returncode}"
        raise DriverError(f"Fetching {url} ({branch}) failed: {why}")
