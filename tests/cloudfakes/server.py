"""What the fake clouds share: an HTTP server on 127.0.0.1 that routes a provider's REST
paths, checks the bearer token, answers injected failures first, and records every request.

A provider's fake (digitalocean.py, hetzner.py) lists its routes and says how its errors,
its rate-limit answers and its pages look; its VMs are real fleet hosts (hosts.py).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from .hosts import Hosts

Answer = tuple[int, dict | None, dict[str, str]]


def fingerprint(public_key: str) -> str:
    blob = base64.b64decode(public_key.split()[1])
    digest = hashlib.md5(blob).hexdigest()  # noqa: S324 (DigitalOcean's fingerprint is MD5)
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


@dataclass
class Rule:
    """An answer given instead of the real one, to the next `times` matching requests."""

    method: str
    path: re.Pattern
    status: int
    body: dict | None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict
    status: int


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict

    def arg(self, name: str, default: str = "") -> str:
        return (self.query.get(name) or [default])[0]


class FakeAPI:
    #: The API's version prefix ("/v2"); routes are written after it.
    prefix = ""
    #: Every listing comes in pages this small, so that clients must follow them.
    max_per_page = 3
    routes: list[tuple[str, str, str]] = []  # (method, path regex, handler method name)

    def __init__(self, token: str, hosts: Hosts | None = None) -> None:
        self.token = token
        self.hosts = hosts
        self.lock = threading.RLock()
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self.ids = itertools.count(1001)
        self._routes = [
            (method, re.compile(self.prefix + pattern + r"\Z"), getattr(self, name))
            for method, pattern, name in self.routes
        ]
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.hosts is not None:
            self.hosts.close()

    # -- what a provider's fake says ------------------------------------------------------------
    def error(self, status: int, code: str, message: str) -> Answer:
        raise NotImplementedError

    def too_many(self) -> Answer:
        raise NotImplementedError

    def page(self, req: Request, key: str, items: list[dict]) -> dict:
        raise NotImplementedError

    # -- what a test asks of it -----------------------------------------------------------------
    def answer_next(self, method: str, path: str, status: int, code: str, message: str, times=1):
        """The next `times` requests to METHOD path (a regex after the prefix) fail so."""
        _, body, headers = self.error(status, code, message)
        self.rules.append(
            Rule(method, re.compile(self.prefix + path + r"\Z"), status, body, headers, times)
        )

    def rate_limit_next(self, method: str, path: str, times: int = 1) -> None:
        status, body, headers = self.too_many()
        self.rules.append(
            Rule(method, re.compile(self.prefix + path + r"\Z"), status, body, headers, times)
        )

    def count(self, method: str, path: str, status: int | None = None) -> int:
        pattern = re.compile(self.prefix + path + r"\Z")
        return sum(
            1
            for s in self.seen
            if s.method == method and pattern.match(s.path) and status in (None, s.status)
        )

    def later(self, work: Callable[[], None]) -> None:
        """Do it in the background, as the provider's machinery does after answering."""
        threading.Thread(target=work, daemon=True).start()

    def next_id(self) -> int:
        return next(self.ids)

    @staticmethod
    def now() -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    # -- serving --------------------------------------------------------------------------------
    def dispatch(self, method: str, target: str, headers, raw: bytes) -> Answer:
        parts = urlsplit(target)
        path = unquote(parts.path)  # a tag "a:b" arrives as a%3Ab
        answer = self._answer(method, path, parts.query, headers, raw)
        self.seen.append(Seen(method, path, parse_qs(parts.query), answer[0]))
        return answer

    def _answer(self, method: str, path: str, query: str, headers, raw: bytes) -> Answer:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return self.error(401, "unauthorized", "Unable to authenticate you")
        with self.lock:
            for rule in self.rules:
                if rule.times > 0 and rule.method == method and rule.path.match(path):
                    rule.times -= 1
                    return rule.status, rule.body, rule.headers
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self.error(400, "json_error", "The request body is not valid JSON")
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                req = Request(method, path, parse_qs(query), body)
                with self.lock:
                    return handler(req, *match.groups())
        return self.error(404, "not_found", "The resource you requested could not be found.")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        fake: FakeAPI = self.server.fake  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, body, headers = fake.dispatch(self.command, self.path, self.headers, raw)
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, format, *args) -> None:
        return
