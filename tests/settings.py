"""The suite's settings: dockerdash's own, with a data dir per pytest-xdist worker.

`make test` runs files on two workers. Each gets DOCKERDASH_DATA_DIR/<worker>, hence its own
instance id, which labels the containers, volumes and VMs it makes on the shared test engine
and hypervisor and which its session clean-up removes (never another worker's). Databases are
per worker by pytest-django already; ports are picked free; names carry random suffixes.
Set here because pytest-django imports the settings before any conftest runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_worker = os.getenv("PYTEST_XDIST_WORKER")
# In the worker itself only: the commands the tests start (manage.py ...) inherit the worker's
# environment, often with a data dir of the test's own, which they must use as given.
if _worker and "pytest" in sys.modules:
    _base = os.getenv("DOCKERDASH_DATA_DIR") or str(Path(__file__).resolve().parent.parent / "var")
    os.environ["DOCKERDASH_DATA_DIR"] = str(Path(_base) / _worker)

from dockerdash.settings import *  # noqa: E402, F403

# Passwords in the suite are hashed with PBKDF2-SHA256 as in production, with few rounds
# (tests/hashers.py); the default hasher stays, to verify hashes made elsewhere.
PASSWORD_HASHERS = [
    "tests.hashers.QuickPBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
