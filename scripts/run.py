"""`make run` after the install, in ONE Python process: migrate, create the admin account when
there is no user yet, serve. Each Django start-up imports every driver's SDK (seconds of CPU on
a 2-core machine): one start-up instead of three is most of a first run's wait.

    python scripts/run.py HOST:PORT
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockerdash.settings")


def main(bind: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    print("dockerdash: migrating the database", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    call_command("createadmin")
    # The server's threads open their own connections.
    connections.close_all()
    print(f"dockerdash: starting the server on http://{bind}", flush=True)
    call_command("serve", bind=bind)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000")
