"""The remote client's only way in: the REST API over HTTP(S), with the standard library
(no Django, no requests: `dockerdash ls` starts in a few tens of milliseconds)."""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path


class ClientError(Exception):
    """What went wrong, in one sentence (the server's own when it gave one)."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "dockerdash" / "client.json"


def save_login(url: str, token: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token}, f)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)  # an older file keeps no wider mode
    return path


def load_login() -> tuple[str, str] | None:
    if (url := os.environ.get("DOCKERDASH_URL")) and (token := os.environ.get("DOCKERDASH_TOKEN")):
        return url, token
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return None
    return data["url"], data["token"]


class Api:
    def __init__(self, url: str, token: str, timeout: float = 30) -> None:
        if not url.startswith(("http://", "https://")):
            raise ClientError(f"{url!r} is not a dashboard URL: give http(s)://host[:port].")
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, query: dict | None = None, body=None):
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        # http(s) only: checked in __init__.
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            raise ClientError(_detail(e)) from None
        except urllib.error.URLError as e:
            raise ClientError(f"Cannot reach {self.base}: {e.reason}") from None

    def get(self, path: str, **query):
        return self.call("GET", path, query or None)

    def post(self, path: str, body=None, **query):
        return self.call("POST", path, query or None, body)

    def put(self, path: str, body):
        return self.call("PUT", path, None, body)

    def machines(self) -> list[dict]:
        """Every machine the token sees, a thousand a request."""
        rows, page = [], 1
        while True:
            body = self.get("/machines", per_page=1000, page=page)
            rows += body["results"]
            if page >= body["pages"]:
                return rows
            page += 1

    def machine(self, name: str) -> dict:
        return self.get(f"/machines/{urllib.parse.quote(name, safe='')}")


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        return json.loads(error.read())["detail"]
    except (ValueError, KeyError, TypeError):
        return f"The server answered {error.code} {error.reason}."
