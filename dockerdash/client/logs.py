"""`dockerdash logs MACHINE CONTAINER [--tail N] [-f]`: a container's log through the API.

Following polls the log endpoint with `since` (the last line's time the server returned): one
small request a second, no socket to keep open, and no line twice (the server drops lines at
or before that instant by their own nanosecond times)."""

from __future__ import annotations

import sys
import time
from urllib.parse import quote

from dockerdash.client.api import Api, ClientError

POLL_SECONDS = 1.0
FOLLOW_CHUNK = 10000  # the most lines one poll returns (the API's own ceiling)


def find_container(api: Api, machine: str, wanted: str) -> dict:
    """The machine's container named `wanted`, or with that ID or unique ID prefix."""
    rows = api.get(f"/machines/{quote(machine, safe='')}/containers")
    exact = [c for c in rows if wanted in (c["name"], c["id"])]
    found = exact or [c for c in rows if len(wanted) >= 3 and c["id"].startswith(wanted)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ClientError(
            f"{wanted!r} names more than one container on {machine}: give more of its ID."
        )
    raise ClientError(f"No such container on {machine}: {wanted!r}.")


def logs(api: Api, machine: str, container: str, tail: int, follow: bool, out=sys.stdout) -> int:
    if not 1 <= tail <= FOLLOW_CHUNK:
        raise ClientError(f"--tail takes 1 to {FOLLOW_CHUNK} lines.")
    box = find_container(api, machine, container)
    path = f"/machines/{quote(machine, safe='')}/containers/{quote(box['id'], safe='')}/logs"
    got = api.get(path, tail=tail)
    out.write(got["text"])
    out.flush()
    if not follow:
        return 0
    last = got["last"]
    try:
        while True:
            time.sleep(POLL_SECONDS)
            got = api.get(path, tail=FOLLOW_CHUNK, **({"since": last} if last else {}))
            out.write(got["text"])
            out.flush()
            last = got["last"] or last
            if not got["text"] and not _running(api, machine, box["id"]):
                return 0  # as `docker logs -f`: the log ends with its container
    except KeyboardInterrupt:
        return 0


def _running(api: Api, machine: str, container_id: str) -> bool:
    rows = api.get(f"/machines/{quote(machine, safe='')}/containers")
    return any(c["id"] == container_id and c["state"] == "running" for c in rows)
