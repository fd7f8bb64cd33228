"""The data folder holds the database, the secret key, the field keys and every engine's
client certificates: only the dashboard's own user may enter it or read its database.

Called from the settings, before anything opens or writes a file there. Logging is not
configured yet at that point: a warning goes to stderr through logging's last resort.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("dockerdash.datadir")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
#: The files dockerdash writes into its data folder, which must never be committed: the
#: root's .gitignore names each of them (a test holds it to this list).
DATA_FILES = (
    *("secret.key", "instance.id", "field.keys", "dockerdash.sqlite3", "test.sqlite3"),
    "tls-cache",
)
#: The one folder inside the source tree that may hold data: git-ignored, used by `make run`
#: (var/) and `make test` (var/test).
DEFAULT_SUBDIR = "var"


class DataDirError(Exception):
    """The configured data folder would put the key and database where they get published."""


def data_dir_from(configured: str | None, base_dir: Path) -> Path:
    """The data folder: DOCKERDASH_DATA_DIR (empty counts as unset), else `var/` of the
    source tree. Refused: the source tree itself or a folder inside it other than `var/`
    (and what is below it), where the secret key and database would be committed with the
    code."""
    base = base_dir.resolve()
    default = base / DEFAULT_SUBDIR
    path = Path(configured).expanduser().resolve() if configured else default
    if path.is_relative_to(default) or not path.is_relative_to(base):
        return path
    raise DataDirError(
        f"DOCKERDASH_DATA_DIR={configured} is in the source tree {base}: "
        f"its secret key and database would be committed with the code. Use a folder "
        f"outside the source tree, or leave the variable empty for {default}, which git ignores."
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def secure_data_dir(path: Path) -> None:
    """Create the folder 0700, or tighten an existing one that others may enter."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    mode = _mode(path)
    if mode & 0o077:
        path.chmod(PRIVATE_DIR)
        log.warning(
            "The data folder %s was open to other users (mode %04o): tightened it to 0700.",
            path,
            mode,
        )


def secure_sqlite(database: str | Path) -> None:
    """Keep a SQLite database and its -wal and -shm files 0600.

    SQLite creates the -wal and -shm files with the mode of the database file, so creating
    the (empty) database file 0600 before SQLite first opens it keeps all three private;
    files left by an older version are tightened."""
    name = str(database)
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    db = Path(name)
    if not db.parent.is_dir():
        return  # SQLite says so itself, in words, when it is opened
    with contextlib.suppress(FileExistsError):
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    for path in (db, Path(f"{name}-wal"), Path(f"{name}-shm")):
        with contextlib.suppress(FileNotFoundError):
            if _mode(path) & 0o077:
                path.chmod(PRIVATE_FILE)
