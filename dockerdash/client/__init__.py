"""`dockerdash` on a laptop: the `machine` commands through the REST API, with a token
saved by `dockerdash login URL`. Nothing here imports Django."""

from __future__ import annotations

import argparse
import getpass
import sys

from dockerdash.client import commands
from dockerdash.client.api import Api, ClientError, load_login, save_login

LIFECYCLE = ("start", "stop", "restart", "kill", "provision", "upgrade", "regenerate-certs", "rm")
SHOW = ("inspect", "ip", "url", "status")
SERVER_LOCAL = {
    "scp": "scp stays on the dashboard's server: run `dockerdash scp` there.",
    "mount": "mount stays on the dashboard's server: run `dockerdash mount` there.",
}
COMMANDS = {"login", "ls", "create", "env", "config", "tag", "context", "logs", "ssh", "cancel"}
COMMANDS |= {*LIFECYCLE, *SHOW}


def _parser(action: str, api: Api | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"dockerdash {action}")
    if action == "login":
        parser.add_argument("url")
        parser.add_argument("--token", default="", help="else asked for (not echoed)")
    elif action == "ls":
        parser.add_argument("-q", "--quiet", action="store_true")
        parser.add_argument("-f", "--filter", action="append", default=[])
        parser.add_argument("--format", default="")
        parser.add_argument("-t", "--timeout", type=int, default=10)
    elif action == "cancel":
        parser.add_argument("names", nargs="+")
    elif action in LIFECYCLE:
        parser.add_argument("names", nargs="+")
        parser.add_argument("-v", "--verbose", action="store_true")
        if action == "rm":
            parser.add_argument("-y", action="store_true")
            parser.add_argument("-f", "--force", action="store_true")
            parser.add_argument("--purge", action="store_true")
        if action == "regenerate-certs":
            parser.add_argument("-f", "--force", action="store_true")
            parser.add_argument("--client-certs", action="store_true")
    elif action == "env":
        parser.add_argument("name", nargs="?")
        parser.add_argument("--shell", default="")
        parser.add_argument("-u", "--unset", action="store_true")
        parser.add_argument("--no-proxy", action="store_true")
    elif action == "tag":
        parser.add_argument("name")
        parser.add_argument("tags", nargs="*")
        parser.add_argument("--rm", action="append", default=[])
    elif action == "logs":
        parser.add_argument("machine")
        parser.add_argument("container", help="its name, ID or a unique ID prefix")
        parser.add_argument("-n", "--tail", type=int, default=100, help="lines (at most 10000)")
        parser.add_argument("-f", "--follow", action="store_true")
    elif action == "create":
        from dockerdash.client import create

        create.add_arguments(parser, api.get("/drivers/flags"))
    else:
        parser.add_argument("name")
        if action == "inspect":
            parser.add_argument("-f", "--format", default="")
    return parser


def _login(url: str, token: str) -> str:
    token = token or getpass.getpass("API token: ")
    Api(url, token).get("/machines", per_page=1)  # refused here, not at the next command
    return f"Logged in to {url}; token saved in {save_login(url, token)}"


def run(argv: list[str]) -> int:
    action, rest = argv[0], argv[1:]
    if action in SERVER_LOCAL:
        print(SERVER_LOCAL[action], file=sys.stderr)
        return 1
    login = load_login()
    if action != "login" and login is None:
        print("Not logged in: run `dockerdash login URL` first.", file=sys.stderr)
        return 1
    api = Api(*login) if login else None
    try:
        opts = vars(_parser(action, api).parse_args(rest))
        return _dispatch(api, action, opts)
    except ClientError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if action in ("logs", "ssh"):
            return 130
        if action == "cancel":
            print("\nStopped waiting: the operation stops at its next step.", file=sys.stderr)
        else:
            print(
                "\nDetached: the operation goes on on the server "
                "(`dockerdash cancel MACHINE` stops it).",
                file=sys.stderr,
            )
        return 130


def _dispatch(api: Api | None, action: str, opts: dict) -> int:
    if action == "login":
        print(_login(opts["url"], opts["token"]))
    elif action == "create":
        from dockerdash.client import create

        create.run(api, api.get("/drivers/flags"), opts)
    elif action in LIFECYCLE:
        return commands.lifecycle(api, action, **opts)
    elif action == "cancel":
        return commands.cancel(api, **opts)
    elif action == "logs":
        from dockerdash.client.logs import logs

        return logs(api, **opts)
    elif action == "ssh":
        from dockerdash.client.shell import ssh

        return ssh(api, opts["name"])
    elif action == "env":
        sys.stdout.write(commands.env(api, **opts))
    elif action in SHOW:
        print(commands.show(api, action, **opts))
    else:
        print(getattr(commands, action)(api, **opts))
    return 0
