"""A bare git repository served over HTTP (git's "dumb" protocol: plain files, refreshed by
`git update-server-info`), as a stack's source; commits are pushed from a work tree."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest


def git(*args: str, cwd: Path) -> str:
    env = {
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@dataclass
class Repo:
    url: str
    work: Path
    bare: Path

    def commit(self, path: str, text: str) -> None:
        (self.work / path).write_text(text)
        git("add", path, cwd=self.work)
        git("commit", "-q", "-m", f"change {path}", cwd=self.work)
        git("push", "-q", "origin", "main", cwd=self.work)
        git("update-server-info", cwd=self.bare)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def git_repo(tmp_path) -> Repo:
    bare, work = tmp_path / "stack.git", tmp_path / "work"
    bare.mkdir()
    git("init", "-q", "--bare", "-b", "main", cwd=bare)
    git("clone", "-q", str(bare), str(work), cwd=tmp_path)
    git("checkout", "-q", "-b", "main", cwd=work)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Repo(f"http://127.0.0.1:{server.server_address[1]}/stack.git", work, bare)
    server.shutdown()
    server.server_close()
