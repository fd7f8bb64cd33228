"""What a machine's fields may hold, checked on the model so that the create form, the CLI,
`import-docker-machine` and the admin all refuse the same things.

These values end up in shells (`machine env`, the page's copy-paste snippets), on ssh's and
scp's command lines and in the engine's daemon flags: anything else than an address, a
port, a user name or a plain path is refused outright, before any quoting is needed.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

# RFC 1123 labels; '_' too, which some internal DNS zones and container names use.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
# POSIX portable user names (useradd's default rule, upper case allowed), never an option.
SSH_USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
UNIX_PATH_RE = re.compile(r"/[A-Za-z0-9._/+@,~=-]*")
PORT_RE = re.compile(r"[1-9][0-9]{0,4}")
LABEL_RE = re.compile(r"[A-Za-z0-9_./-]+=.*", re.S)
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.S)
STORAGE_DRIVER_RE = re.compile(r"[A-Za-z0-9_.-]*")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# dockerd flags that decide where the API listens and whether it needs TLS: dockerdash sets
# those itself (-H tcp://0.0.0.0:PORT --tlsverify ...); a store or a typo must not undo them.
LISTENER_FLAGS = ("host", "h")
URL_HELP = "tcp://HOST:PORT, ssh://[USER@]HOST[:PORT] or unix:///PATH"


# Credentials in a URL: any user info of http(s)/ftp (a token alone is one), and a
# user:password of any other scheme (ssh://user@host keeps its user name).
WEB_USERINFO_RE = re.compile(r"\b((?:https?|ftp)://)[^\s/@]+@", re.I)
PASSWORD_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*):[^\s/@]*@")


def strip_url_credentials(text: str) -> str:
    """Text (a log line, an error) with the credentials of every URL in it masked."""
    return PASSWORD_RE.sub(r"\1:***@", WEB_USERINFO_RE.sub(r"\1***@", text))


def is_host(value: str) -> bool:
    """An IPv4 or IPv6 address (without brackets) or a DNS host name."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        return "%" not in value  # no IPv6 zone: '%' means something to cmd.exe
    if len(value) > 253 or not HOSTNAME_RE.fullmatch(value):
        return False
    # All digits and dots but not an address (1.2.3, 999.1.1.1): a typo, not a name.
    return not re.fullmatch(r"[0-9.]+", value)


def one_line(error: ValidationError) -> str:
    """A validation error as one line for the command line: `field: message; ...`."""
    if hasattr(error, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
    return " ".join(error.messages)


def validate_host(value: str) -> None:
    if value and not is_host(value):
        raise ValidationError(
            "Enter an IP address or a host name (letters, digits, '-', '.'), not %(value)r.",
            code="invalid_host",
            params={"value": value},
        )


def validate_ssh_user(value: str) -> None:
    if not SSH_USER_RE.fullmatch(value or ""):
        raise ValidationError(
            "Enter a user name (letters, digits, '_', '.', '-', not starting with '-'), "
            "not %(value)r.",
            code="invalid_user",
            params={"value": value},
        )


@dataclass(frozen=True)
class EngineURL:
    scheme: str
    host: str = ""  # as written in the URL: an IPv6 address keeps its brackets
    port: int | None = None
    user: str = ""
    path: str = ""


def _host_port(text: str, *, port_required: bool) -> tuple[str, int | None]:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        try:
            ok = bool(sep) and ipaddress.ip_address(host).version == 6 and "%" not in host
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{text!r} is not a bracketed IPv6 address")
        host = f"[{host}]"
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after the address")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text = text.partition(":")
        port_text = port_text if sep else None
        if not is_host(host) or ":" in host:
            raise ValueError(f"{host!r} is not an IP address or a host name")
    if port_text is None:
        if port_required:
            raise ValueError("the port is missing (HOST:PORT)")
        return host, None
    if not PORT_RE.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{port_text!r} is not a port (1-65535)")
    return host, int(port_text)


def parse_engine_url(url: str) -> EngineURL:
    """The parts of an engine URL; ValueError saying what is wrong with anything else."""
    if CONTROL_RE.search(url) or " " in url:
        raise ValueError("it contains spaces or control characters")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("tcp", "ssh", "unix"):
        raise ValueError("it must start with tcp://, ssh:// or unix://")
    if scheme == "unix":
        if not UNIX_PATH_RE.fullmatch(rest) or "/../" in f"{rest}/":
            raise ValueError(
                "the socket path must be absolute, of letters, digits and . _ / + @ , ~ = -"
            )
        return EngineURL("unix", path=rest)
    user = ""
    if scheme == "ssh" and "@" in rest:
        user, _, rest = rest.partition("@")
        if not SSH_USER_RE.fullmatch(user):
            raise ValueError(f"{user!r} is not a user name")
    if "/" in rest or "?" in rest or "#" in rest:
        raise ValueError("an engine URL has no path, query or fragment")
    host, port = _host_port(rest, port_required=scheme == "tcp")
    return EngineURL(scheme, host=host, port=port, user=user)


def validate_engine_url(value: str) -> None:
    if not value:
        return
    try:
        parse_engine_url(value)
    except ValueError as e:
        raise ValidationError(
            "The engine URL %(value)r is not of the form %(form)s: %(why)s.",
            code="invalid_url",
            params={"value": value, "form": URL_HELP, "why": e},
        ) from None


def _strings(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"The {what} must be a list of texts.", code="invalid_list")
    for item in value:
        if CONTROL_RE.search(item):
            raise ValidationError(
                "The %(what)s %(item)r contains a line break or another control character.",
                code="control_character",
                params={"what": what, "item": item},
            )
    return value


def _each(value, what: str, pattern: re.Pattern, form: str) -> None:
    for item in _strings(value, what):
        if not pattern.fullmatch(item):
            raise ValidationError(
                "The %(what)s %(item)r is not of the form %(form)s.",
                code="invalid",
                params={"what": what, "item": item, "form": form},
            )


def validate_engine_labels(value) -> None:
    _each(value, "engine label", LABEL_RE, "key=value")


def validate_engine_env(value) -> None:
    _each(value, "engine environment variable", ENV_RE, "KEY=value")


def validate_text_list(value) -> None:
    _strings(value, "value")


def validate_storage_driver(value: str) -> None:
    if not STORAGE_DRIVER_RE.fullmatch(value or ""):
        raise ValidationError(
            "A storage driver is a name such as overlay2.", code="invalid_storage_driver"
        )


def _flag_name(word: str) -> str | None:
    """The normalised name of a daemon flag word (--tls-verify=x -> 'tlsverify')."""
    if not word.startswith("-") or re.fullmatch(r"-[0-9][0-9.]*", word):
        return None  # a value (negative numbers included), not a flag
    return re.sub(r"[-_.]", "", word.lstrip("-").partition("=")[0].lower())


def engine_opt_problem(opt: str) -> str | None:
    """Why a daemon flag line (as in --engine-opt, split like a shell) is refused, or None."""
    try:
        words = shlex.split(opt)
    except ValueError:
        return f"{opt!r} has unbalanced quotes"
    for word in words:
        name = _flag_name(word)
        if name in LISTENER_FLAGS or (name or "").startswith("tls"):
            return (
                f"{word!r} would change where the Docker API listens or its TLS, which "
                "dockerdash sets itself"
            )
        # A cluster such as -DH would hide -H: only --long flags are taken.
        if name and not word.startswith("--"):
            return f"{word!r} is a short flag: write its --long=value form"
    if not words or not words[0].startswith("--"):
        return f"{opt!r} is not a daemon flag (--name[=value])"
    return None


def validate_engine_opts(value) -> None:
    for opt in _strings(value, "daemon flag"):
        if problem := engine_opt_problem(opt):
            raise ValidationError("%(problem)s.", code="invalid_flag", params={"problem": problem})


# Tags: key=value, in the words of URLs, shells and `ls --filter tag=key=value` without quoting.
TAG_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,62}")
TAG_VALUE_RE = re.compile(r"[A-Za-z0-9_./:@+-]{0,128}")
MAX_TAGS = 32
# The lookups Django reads after a JSON field or key (`tags__regex`): tags
# are matched with has_key and an exact value only, and a key is never one of these words
# nor holds "__", so that no key can become a lookup anywhere (forms, store imports, admin).
TAG_KEY_WORDS = frozenset(
    {
        *("exact", "iexact", "contains", "icontains", "contained_by", "in", "gt", "gte"),
        *("lt", "lte", "range", "isnull", "regex", "iregex", "has_key", "has_keys"),
        *("has_any_keys", "startswith", "istartswith", "endswith", "iendswith"),
    }
)


def parse_tag(text: str) -> tuple[str, str]:
    """`key=value` (or `key`, an empty value) as a pair; ValueError saying what is wrong."""
    key, _, value = text.strip().partition("=")
    if not TAG_KEY_RE.fullmatch(key):
        raise ValueError(
            f"{text!r} is not a tag: its key starts with a letter or digit and holds letters, "
            "digits and _ . / - (at most 63)"
        )
    if "__" in key or key.lower() in TAG_KEY_WORDS:
        raise ValueError(
            f"{text!r} is not a tag: its key may not hold '__' nor be a database word "
            "such as regex, contains or exact"
        )
    if not TAG_VALUE_RE.fullmatch(value):
        raise ValueError(
            f"{text!r} is not a tag: its value holds letters, digits and _ . / : @ + - "
            "(at most 128)"
        )
    return key, value


def parse_tags(words: list[str]) -> dict[str, str]:
    """key=value words as tags; a ValidationError naming the first that is not one."""
    tags: dict[str, str] = {}
    for word in words:
        try:
            key, value = parse_tag(word)
        except ValueError as e:
            raise ValidationError(f"{e}.", code="invalid_tag") from None
        tags[key] = value
    return tags


def tag_filter(text: str) -> tuple[str, str, bool] | None:
    """A list filter's tag: (key, value, whether a value was given), `key` alone meaning "has
    this tag"; None for no filter; a ValidationError saying what is wrong."""
    text = text.strip()
    if not text:
        return None
    try:
        key, value = parse_tag(text)
    except ValueError as e:
        raise ValidationError(str(e)) from None
    return key, value, "=" in text


def validate_tags(value) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValidationError("Tags are key=value pairs of texts.", code="invalid_tags")
    if len(value) > MAX_TAGS:
        raise ValidationError(f"At most {MAX_TAGS} tags.", code="too_many_tags")
    for key, item in value.items():
        try:
            parse_tag(f"{key}={item}")
        except ValueError as e:
            raise ValidationError("%(why)s.", code="invalid_tag", params={"why": e}) from None


def validate_notification_target(kind: str, target: str) -> None:
    """A channel's target: email addresses for kind "email", else a URL Apprise knows."""
    target = target.strip()
    if kind == "email":
        addresses = [a.strip() for a in target.split(",") if a.strip()]
        if not addresses:
            raise ValidationError({"target": "Give one or more email addresses, comma separated."})
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError({"target": f"'{address}' is not an email address."}) from None
        return
    import apprise

    if not apprise.Apprise().add(target):
        raise ValidationError(
            {"target": "Apprise does not know this URL (see its list: ntfy://, json://, ...)."}
        )
