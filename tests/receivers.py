"""Real receivers for notices, started by the tests: an SMTP server (aiosmtpd) and an HTTP
endpoint taking the JSON POSTs of Apprise's json:// (as an ntfy-style webhook would)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Inbox:
    def __init__(self) -> None:
        self.items: list[dict] = []
        self.lock = threading.Lock()

    def add(self, item: dict) -> None:
        with self.lock:
            self.items.append(item)

    def titles(self) -> list[str]:
        with self.lock:
            return [i["title"] for i in self.items]


@pytest.fixture
def smtp_inbox():
    """A local SMTP server; Django's mail settings point at it. Yields its Inbox."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            from email import message_from_bytes

            message = message_from_bytes(envelope.content)
            inbox.add(
                {
                    "title": str(message["Subject"]),
                    "to": list(envelope.rcpt_tos),
                    "body": message.get_payload(decode=True).decode(),
                }
            )
            return "250 OK"

    with socket.socket() as s:  # a free port (aiosmtpd's start() connects to what it is given)
        s.bind(("127.0.0.1", 0))
        inbox.port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


@pytest.fixture
def http_inbox():
    """A local HTTP receiver of JSON POSTs (Apprise json://127.0.0.1:PORT/hook). Paths under
    /fail answer 500, for delivery failures. Yields its Inbox with `.port`."""
    inbox = Inbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.startswith("/fail"):
                self.send_response(500)
                self.end_headers()
                return
            data = json.loads(body)
            inbox.add({"title": data.get("title", ""), "body": data.get("message", "")})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    inbox.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield inbox
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_settings(settings, smtp_inbox):
    """Django's real SMTP mailer (the test set-up swaps in locmem) to the local server."""
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": smtp_inbox.port, "timeout": 5},
        }
    }
    return settings
