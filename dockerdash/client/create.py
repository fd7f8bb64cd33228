"""`dockerdash create` remotely: the flags of `machine create` (each driver's from the
server, which defines them in its forms), files read here, the machine made there."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dockerdash.client.api import Api, ClientError
from dockerdash.client.commands import follow

ENGINE_FLAGS = {
    "engine_label": "engine_labels",
    "engine_insecure_registry": "engine_insecure_registries",
    "engine_registry_mirror": "engine_registry_mirrors",
    "engine_env": "engine_env",
    "engine_opt": "engine_opts",
    "tls_san": "tls_san",
}


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser, flags: list[dict]) -> None:
    parser.add_argument("name")
    parser.add_argument(
        "-d", "--driver", default="", help="driver kind or configured name (the server's default)"
    )
    seen = set()
    for flag in flags:
        if flag["flag"] in seen:
            continue
        seen.add(flag["flag"])
        if flag["boolean"]:
            parser.add_argument(flag["flag"], dest=_dest(flag["flag"]), action="store_true")
        else:
            parser.add_argument(flag["flag"], dest=_dest(flag["flag"]), help=flag["help"])
    for option in [*ENGINE_FLAGS, "tag"]:
        parser.add_argument("--" + option.replace("_", "-"), action="append", default=[])
    parser.add_argument("--engine-storage-driver", default="")
    parser.add_argument("--engine-install-url", default="")
    parser.add_argument("-v", "--verbose", action="store_true")


def _given(flags: list[dict], kind: str, form: str, opts: dict) -> dict:
    given = {}
    for flag in flags:
        if flag["kind"] != kind or flag["form"] != form:
            continue
        value = opts.get(_dest(flag["flag"]))
        if value in (None, False) and flag["env"]:
            value = os.environ.get(flag["env"]) or None
        if value in (None, False):
            continue
        if flag["is_file"]:
            try:
                value = Path(value).expanduser().read_text()
            except OSError as e:
                raise ClientError(f"Cannot read {flag['flag']} {value}: {e.strerror}") from None
        given[flag["field"]] = value
    return given


def run(api: Api, flags: list[dict], opts: dict) -> None:
    kinds = {f["kind"] for f in flags}
    driver = opts["driver"]
    kind = (
        driver
        if driver in kinds
        else next((d["kind"] for d in api.get("/drivers") if d["name"] == driver), driver)
    )
    body = {
        "name": opts["name"],
        "driver": driver,
        "settings": _given(flags, kind, "settings", opts),
        "options": _given(flags, kind, "options", opts),
        "tags": dict(t.partition("=")[::2] for t in opts["tag"]),
        "engine_storage_driver": opts["engine_storage_driver"],
        "engine_install_url": opts["engine_install_url"],
    }
    for option, field in ENGINE_FLAGS.items():
        values = opts[option]
        if option == "engine_opt":
            values = [v if v.startswith("--") else f"--{v}" for v in values]
        body[field] = values
    op = api.post("/machines", body)
    made_with = api.machine(opts["name"])["driver"]
    print(f"Creating machine {opts['name']} ({made_with})...", flush=True)
    follow(api, op, opts["verbose"])
