"""The data folder (secret key, instance id, field keys, database) is never in the source
tree where git would publish it: none of its files is tracked, each is ignored at the root,
an empty DOCKERDASH_DATA_DIR means the default, and a folder in the source tree other than
the git-ignored `var/` is refused with a sentence saying why."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dockerdash.datadir import DATA_FILES, DEFAULT_SUBDIR, DataDirError, data_dir_from

from .helpers import MANAGE, ROOT, run


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout


def test_no_data_folder_file_is_tracked():
    tracked = _git("ls-files").splitlines()
    assert tracked, "not a git checkout"
    leaked = [p for p in tracked if set(Path(p).parts) & set(DATA_FILES) or p.endswith(".sqlite3")]
    assert leaked == []


def test_every_data_folder_file_name_is_ignored_at_the_root():
    names = [*DATA_FILES, "dockerdash.sqlite3-wal", "test.sqlite3-shm", "var/secret.key"]
    ignored = _git("check-ignore", "--no-index", *names).split()
    assert sorted(ignored) == sorted(names)


def test_an_empty_variable_means_the_default_folder(tmp_path):
    default = (ROOT / DEFAULT_SUBDIR).resolve()
    assert data_dir_from("", ROOT) == default
    assert data_dir_from(None, ROOT) == default
    assert data_dir_from(str(ROOT / "var" / "test"), ROOT) == default / "test"
    assert data_dir_from(str(tmp_path), ROOT) == tmp_path.resolve()


@pytest.mark.parametrize("inside", [".", "machines", "docs/data", "var/../static", "./"])
def test_a_folder_in_the_source_tree_is_refused(inside):
    with pytest.raises(DataDirError, match="is in the source tree"):
        data_dir_from(str(ROOT / inside), ROOT)


def test_the_dashboard_refuses_to_start_on_the_source_tree():
    env = {**os.environ, "DOCKERDASH_DATA_DIR": str(ROOT)}
    before = set(os.listdir(ROOT))
    result = run(f"{MANAGE} check", env, check=False, timeout=120)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "its secret key and database would be committed with the code" in output
    assert set(os.listdir(ROOT)) == before  # nothing written there
