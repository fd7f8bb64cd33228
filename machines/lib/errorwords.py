"""Errors in words: what went wrong reaching a host or an engine, in one sentence a user can
act on, from the nest of exceptions a library raises (requests in urllib3 in ssl in socket).

`describe()` returns that sentence; callers keep the library's own text (`detail()`) beside
it, behind a "details" toggle and in `machine inspect`. Django-free.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography import x509

# How the OpenSSL alerts an engine sends read when it refuses our client certificate.
_CLIENT_CERT_REFUSED = re.compile(
    r"alert (unknown ca|bad certificate|certificate required|certificate unknown|"
    r"decrypt error|access denied)",
    re.I,
)
_VERIFY_REASONS = {
    "unable to get local issuer certificate": "it was not issued by that CA",
    "self-signed certificate": "it is self-signed",
    "self signed certificate": "it is self-signed",
    "certificate has expired": "it has expired",
    "certificate is not yet valid": "it is not valid yet",
    "unable to verify the first certificate": "it was not issued by that CA",
}


@dataclass(frozen=True)
class Target:
    """What was being reached: an address (host:port or a socket's path) and, for TLS, the
    name of the CA it was checked against."""

    address: str = ""
    host: str = ""
    port: int | None = None
    ca: str = ""
    timeout: float | None = None
    service: str = "Docker"


def target_of(url: str, *, ca: str = "", timeout: float | None = None) -> Target:
    """The Target of an engine URL (tcp://host:port, unix:///path, ssh://user@host)."""
    scheme, _, rest = url.partition("://")
    if scheme == "unix":
        return Target(address=rest, ca=ca, timeout=timeout)
    rest = rest.rpartition("@")[2].split("/")[0]
    host, port = rest, None
    if re.fullmatch(r"(\[[^\]]+\]|[^:]+):\d+", rest):
        host, _, port_text = rest.rpartition(":")
        port = int(port_text)
    return Target(address=rest, host=host.strip("[]"), port=port, ca=ca, timeout=timeout)


def chain(error: BaseException) -> Iterator[BaseException]:
    """The error and every error nested in it (causes, contexts, arguments, `.reason`,
    `.errors`)."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            nested.append(reason)
        # paramiko's NoValidConnectionsError: one error per address tried.
        per_address = getattr(current, "errors", None)
        if isinstance(per_address, dict):
            nested += [e for e in per_address.values() if isinstance(e, BaseException)]
        todo += [*nested, current.__cause__, current.__context__]


def detail(error: BaseException) -> str:
    """The library's own text, for the "details" behind the sentence."""
    text = str(error) or error.__class__.__name__
    return f"{error.__class__.__name__}: {text}"[:2000]


def describe(error: BaseException, target: Target | None = None) -> str:
    """One sentence (without a final period) saying what went wrong, in words."""
    target = target or Target()
    where = target.address or "the host"
    errors = list(chain(error))
    for e in errors:
        if isinstance(e, ssl.SSLCertVerificationError):
            return _untrusted(e, target)
    for e in errors:
        if isinstance(e, ssl.SSLError) and _CLIENT_CERT_REFUSED.search(str(e)):
            ca = f" of the CA {target.ca}" if target.ca else ""
            return (
                f"{where} refused the dashboard's client certificate{ca} (the engine does not "
                "trust it): provision the machine again or regenerate its certificates"
            )
    for e in errors:
        if found := _plain(e, where, target):
            return found
    return _fallback(error)


def _plain(e: BaseException, where: str, target: Target) -> str:
    name = e.__class__.__name__
    if isinstance(e, socket.gaierror) or name == "NameResolutionError":
        return f"the name {target.host or where} could not be resolved (DNS): check the address"
    if isinstance(e, ConnectionRefusedError):
        return f"{where} refused the connection: is {target.service} running and listening there?"
    if isinstance(e, TimeoutError | socket.timeout) or "Timeout" in name:
        within = f" within {target.timeout:g} s" if target.timeout else ""
        return f"{where} did not answer{within} (the host is down, or a firewall drops the traffic)"
    if isinstance(e, FileNotFoundError):
        return f"nothing listens at {where} (there is no such socket)"
    if isinstance(e, PermissionError):
        return f"permission denied on {where}: the dashboard's user may not use it"
    if isinstance(e, ConnectionResetError | BrokenPipeError):
        return f"{where} closed the connection (is something other than Docker listening?)"
    if isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"there is no route to {where} (is the host up, is the address right?)"
    if name in ("AuthenticationException", "BadAuthenticationType"):
        return f"{where} refused the machine's SSH key (authentication failed)"
    status = getattr(getattr(e, "response", None), "status_code", None)
    if name == "APIError" and status in (401, 403):
        return f"the engine at {where} refused the request: permission denied ({status})"
    return ""


def _untrusted(e: ssl.SSLCertVerificationError, target: Target) -> str:
    message = (e.verify_message or "").strip()
    reason = _VERIFY_REASONS.get(message.lower(), message)
    if m := re.match(r"Hostname mismatch, certificate is not valid for '(.+)'", message):
        reason = f"it does not name {m[1]}"
    names = ""
    if target.host and target.port:
        names = peer_certificate(target.host, target.port, target.timeout or 3)
    cert = f" ({names})" if names else ""
    ca = f"the CA {target.ca}" if target.ca else "the CA it was checked against"
    where = target.address or "the engine"
    return f"the TLS certificate {where} presented{cert} is not trusted by {ca}: {reason}"


def peer_certificate(host: str, port: int, timeout: float) -> str:
    """ "subject X, issued by Y, valid until Z" of what a TLS server presents (unverified:
    only to name it), or "" when it cannot be had."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
    except (OSError, ValueError):
        return ""
    until = cert.not_valid_after_utc.strftime("%Y-%m-%d")
    return (
        f"subject {cert.subject.rfc4514_string() or '(none)'}, issued by "
        f"{cert.issuer.rfc4514_string() or '(none)'}, valid until {until}"
    )


def _fallback(error: BaseException) -> str:
    """The innermost error's own words, without the wrappers' noise (URLs, pools, retries)."""
    innermost = list(chain(error))[-1]
    text = str(innermost) or innermost.__class__.__name__
    text = re.sub(r"<[^>]*>: ", "", text)
    return text.strip().rstrip(".")[:300]
