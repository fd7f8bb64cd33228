"""`docker stack` through the docker command line (compose files are the CLI's business: the
Engine API has no stack), against a manager over its TLS.

The client certificate goes into a private temporary DOCKER_CERT_PATH for the one command
and is deleted after it; variables (secrets too) reach the CLI in its environment only.
Neither is ever logged: errors carry the CLI's own message, which names neither.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import yaml
from django.conf import settings

from machines.lib import command
from machines.lib.errors import DriverError

if TYPE_CHECKING:
    from machines.models import Machine

TIMEOUT = 300


class ComposeError(DriverError):
    """The docker CLI refused the compose file (its message, one sentence)."""


def docker_cli() -> str:
    cli = os.getenv("DOCKERDASH_DOCKER_CLI") or shutil.which("docker")
    if not cli:
        raise DriverError("The docker command line is not installed on the dashboard's server")
    return cli


def _base_env(variables: dict[str, str]) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("PATH", "LANG") if k in os.environ}
    # An empty config folder: no user's credentials helpers or contexts apply.
    return {**keep, **variables, "DOCKER_CLI_HINTS": "false"}


@contextlib.contextmanager
def _manager_env(manager: Machine, variables: dict[str, str]) -> Iterator[dict[str, str]]:
    from machines.pki.certs import ca_for_machine

    ca = ca_for_machine(manager)
    folder = _private_folder()
    try:
        for name, pem in (
            ("ca.pem", ca.cert),
            ("cert.pem", ca.client_cert),
            ("key.pem", ca.client_key),
        ):
            fd = os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(pem)
        yield {
            **_base_env(variables),
            "DOCKER_HOST": manager.url,
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": folder,
            "DOCKER_CONFIG": folder,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _private_folder() -> str:
    base = os.path.join(settings.DATA_DIR, "tmp")
    os.makedirs(base, mode=0o700, exist_ok=True)
    return tempfile.mkdtemp(prefix="docker-", dir=base)


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> str:
    what = f"docker {args[0]} {args[1]}"
    done = command.run([docker_cli(), *args], env=env, timeout=TIMEOUT, what=what, stdin=stdin)
    if done.returncode:
        message = " ".join((done.stderr or done.stdout).split()) or f"exit {done.returncode}"
        raise ComposeError(message.rstrip(".") + ".")
    return done.stdout


def resolve(compose: str, variables: dict[str, str]) -> dict:
    """The compose file as `docker stack config` reads it, variables filled in: the CLI's
    own validation (no engine needed). Raises ComposeError with the CLI's message."""
    folder = _private_folder()
    try:
        env = {**_base_env(variables), "DOCKER_CONFIG": folder}
        out = _run(["stack", "config", "--compose-file", "-"], env, stdin=compose)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return yaml.safe_load(out) or {}


def with_update_config(resolved: dict, update: dict) -> dict:
    """Every service without its own update_config gets the stack's (parallelism, delay,
    failure action): Swarm then rolls its tasks so, bounded and staggered."""
    for service in (resolved.get("services") or {}).values():
        deploy = service.setdefault("deploy", {})
        deploy.setdefault("update_config", dict(update))
    return resolved


def deploy(manager: Machine, stack: str, resolved: dict, variables: dict[str, str]) -> str:
    """`docker stack deploy` of the resolved compose file; the CLI's output."""
    text = yaml.safe_dump(resolved, sort_keys=False)
    with _manager_env(manager, variables) as env:
        return _run(
            [
                "stack",
                "deploy",
                "--compose-file",
                "-",
                "--prune",
                "--detach=true",
                "--resolve-image",
                "never",
                stack,
            ],
            env,
            stdin=text,
        )


def remove(manager: Machine, stack: str) -> str:
    with _manager_env(manager, {}) as env:
        return _run(["stack", "rm", stack], env)
