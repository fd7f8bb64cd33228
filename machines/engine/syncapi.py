"""The few Docker SDK `APIClient` methods watch.py and engine_objects.py call, answered by
the asyncio client (http.py) on the watching loop, for code that runs in a database thread.
A thread asks, the loop does the network: no client per engine, no thread per engine."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import docker.errors
from django.conf import settings

from machines.engine.http import Endpoint, NotFound, get_json


class SyncApi:
    def __init__(self, endpoint: Endpoint, loop: asyncio.AbstractEventLoop) -> None:
        self.endpoint = endpoint
        self.loop = loop

    def _get(self, path: str, params: dict | None = None):
        timeout = settings.HEALTH_CHECK_TIMEOUT * 4
        future = asyncio.run_coroutine_threadsafe(
            get_json(self.endpoint, path, params, timeout=timeout), self.loop
        )
        try:
            return future.result(timeout + 1)
        except NotFound as e:
            raise docker.errors.NotFound(str(e)) from e

    def containers(self, all: bool = False, filters: dict | None = None) -> list[dict]:
        params: dict = {"all": all}
        if filters:
            params["filters"] = {k: v if isinstance(v, list) else [v] for k, v in filters.items()}
        return self._get("/containers/json", params)

    def inspect_container(self, container_id: str) -> dict:
        return self._get(f"/containers/{quote(container_id, safe='')}/json")

    def images(self, all: bool = False) -> list[dict]:
        return self._get("/images/json", {"all": all})

    def volumes(self) -> dict:
        return self._get("/volumes")

    def networks(self) -> list[dict]:
        return self._get("/networks")
