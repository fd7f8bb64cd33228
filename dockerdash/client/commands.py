"""The remote client's commands: the server CLI's names, flags and output (lib/machinefmt
prints both), over the REST API only. No Django here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from dockerdash.client.api import Api, ClientError
from machines.lib import machinefmt

ROW_KEYS = ("name", "driver", "driver_name", "url", "ip", "docker_version", "last_error")


def _path(name: str) -> str:
    return "/machines/" + quote(name, safe="")


def row(machine: dict) -> dict:
    """An API machine as ls prints it (the server CLI builds the same from its database)."""
    out = {k: machine[k] for k in ROW_KEYS}
    return out | {
        "state": machine["state_label"],
        "response_time_ms": machine["response_time_ms"],
        "tags": machine["tags"],
        "engine_labels": machine["engine_labels"],
    }


def ls(api: Api, quiet: bool, filter: list[str], format: str, **_) -> str:
    try:
        wanted = machinefmt.parse_filters(filter, _check_tag)
        rows = [row(m) for m in api.machines()]
        return machinefmt.render_ls(
            [r for r in rows if machinefmt.matches(r, wanted)], quiet, format
        )
    except ValueError as e:
        raise ClientError(str(e)) from None


def _check_tag(text: str) -> None:
    if not text.partition("=")[0]:
        raise ValueError(f"{text!r} is not a tag")


def show(api: Api, action: str, name: str, format: str = "", **_) -> str:
    if action == "inspect":
        try:
            return machinefmt.inspect_text(api.get(_path(name) + "/inspect"), format)
        except ValueError as e:
            raise ClientError(str(e)) from None
    machine = api.machine(name)
    return {"ip": machine["ip"], "url": machine["url"], "status": machine["state_label"]}[action]


def follow(api: Api, op: dict, verbose: bool, out=sys.stdout) -> None:
    """Print an operation's log as it grows, to its end; ClientError unless it succeeded."""
    seen = 0
    while True:
        op = api.get(f"/operations/{op['id']}")
        lines = api.get(f"/operations/{op['id']}/log", after=seen, verbose=verbose)
        for line in lines:
            seen = line["seq"]
            print(line["text"], file=out, flush=True)
        if not op["active"] and not lines:
            break
        if op["active"]:
            time.sleep(0.2)
    if op["status"] != "succeeded":
        raise ClientError(op["error"] or f"{op['kind']} of {op['machine']} ended {op['status']}")


def lifecycle(api: Api, action: str, names: list[str], verbose: bool, **flags) -> int:
    """One operation per machine, each followed to its end; 1 if any failed."""
    if action == "rm" and not flags.get("y"):
        _confirm(f"About to remove {', '.join(names)}\nAre you sure? (y/n): ", "Remove cancelled")
    if action == "regenerate-certs" and not flags.get("force"):
        _confirm(
            "Regenerate TLS machine certs?  Warning: this is irreversible. (y/n): ",
            "Regenerating the certificates cancelled",
        )
    query = {k: "true" for k in ("force", "purge", "client_certs") if flags.get(k)}
    if action == "regenerate-certs":
        query.pop("force", None)
    failed = 0
    for name in names:
        try:
            op = api.post(f"{_path(name)}/actions/{action}", **query)
            follow(api, op, verbose)
        except ClientError as e:
            print(e, file=sys.stderr)
            failed = 1
            continue
        if action == "rm":
            print(f"Successfully removed {name}")
    return failed


def cancel(api: Api, names: list[str]) -> int:
    """The operation under way on each machine cancelled, waited for until it has stopped (a
    running one stops at the end of its current step); 1 if one was not cancelled."""
    failed = 0
    for name in names:
        try:
            active = [op for op in api.get(f"{_path(name)}/operations") if op["active"]]
            if not active:
                raise ClientError(f"{name} has no operation under way.")
            op = api.post(f"/operations/{active[0]['id']}/cancel")
        except ClientError as e:  # no such machine, it ended meanwhile (409), a read token
            print(e, file=sys.stderr)
            failed = 1
            continue
        if op["active"]:
            print(f"The {op['kind']} of {name} stops at the end of its current step...", flush=True)
        while op["active"]:
            time.sleep(0.2)
            op = api.get(f"/operations/{op['id']}")
        if op["status"] == "cancelled":
            print(f"Cancelled the {op['kind']} of {name}")
        else:
            print(
                f"The {op['kind']} of {name} ended {op['status']} before it could stop",
                file=sys.stderr,
            )
            failed = 1
    return failed


def _confirm(question: str, refused: str) -> None:
    if input(question).strip().lower() not in ("y", "yes"):
        raise ClientError(refused)


def tag(api: Api, name: str, tags: list[str], rm: list[str], **_) -> str:
    machine = api.machine(name)
    if tags or rm:
        unknown = [k for k in rm if k not in machine["tags"]]
        if unknown:
            raise ClientError(f"{name} has no tag {', '.join(unknown)}")
        new = dict(t.partition("=")[::2] for t in tags)
        wanted = {k: v for k, v in machine["tags"].items() if k not in rm} | new
        machine = api.put(_path(name) + "/tags", {"tags": wanted})
    return "\n".join(f"{k}={v}" if v else k for k, v in sorted(machine["tags"].items()))


def bundle(api: Api, name: str) -> tuple[dict, Path]:
    """The user's own new client certificate for a machine, in ~/.docker/dockerdash/NAME/."""
    machine = api.machine(name)
    if machine["state"] != "running":
        raise ClientError(
            f"{name} is not running. Please start it in order to use the connection settings"
        )
    files = api.post(_path(name) + "/client-bundle")
    folder = Path.home() / ".docker" / "dockerdash" / name
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for filename, key in (("ca.pem", "ca"), ("cert.pem", "cert"), ("key.pem", "key")):
        path = folder / filename
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(files[key])
    return machine, folder


def env(api: Api, name: str | None, shell: str, unset: bool, no_proxy: bool, **_) -> str:
    def connect(name: str) -> tuple[str, str, str]:
        machine, folder = bundle(api, name)
        return machine["url"], str(folder), machine["ip"]

    argv = (
        ["dockerdash", "env"]
        + (["--unset"] if unset else [])
        + (["--shell", shell] if shell else [])
    )
    argv += (["--no-proxy"] if no_proxy else []) + ([name] if name else [])
    try:
        return machinefmt.env_text(
            shell, unset=unset, with_no_proxy=no_proxy, name=name, connect=connect, argv=argv
        )
    except machinefmt.EnvError as e:
        raise ClientError(str(e)) from None


def config(api: Api, name: str, **_) -> str:
    machine, folder = bundle(api, name)
    return machinefmt.config_text(str(folder), machine["url"])


def context(api: Api, name: str, **_) -> str:
    """A docker context named after the machine, on the user's own certificate."""
    machine, folder = bundle(api, name)
    host = ",".join(
        [f"host={machine['url']}"] + [f"{k}={folder / f'{k}.pem'}" for k in ("ca", "cert", "key")]
    )
    verb = "update" if _context_exists(name) else "create"
    done = subprocess.run(
        ["docker", "context", verb, name, "--docker", host],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise ClientError(done.stderr.strip() or f"docker context {verb} failed")
    return f"docker context {name} points at {machine['url']}: docker --context {name} ps"


def _context_exists(name: str) -> bool:
    done = subprocess.run(["docker", "context", "inspect", name], capture_output=True, check=False)
    return done.returncode == 0
