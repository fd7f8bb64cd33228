"""The runtime lock (requirements.lock, what `make run` installs) is enough for the product:
every module of dockerdash/ and machines/ imports in a venv built from it alone, where no test
tool (pytest, moto, playwright, ruff) and no tests package can be imported."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
TEST_TOOLS = ("pytest", "pytest_django", "moto", "playwright", "ruff", "flask", "tests")
# Modules of an optional extra with its own lock (requirements-ldap.lock): settings name them only
# when the extra is configured (DOCKERDASH_LDAP_URI), so the runtime lock need not import them;
# each may fail here only for want of its extra's package.
EXTRAS = {"machines.services.ldapauth": "django_auth_ldap"}

# Run inside the runtime venv: Django set up as `make run` does, then every module imported.
IMPORT_ALL = """
import importlib, importlib.util, json, pkgutil, sys
import django
django.setup()
tools = [name for name in sys.argv[1:] if importlib.util.find_spec(name) is not None]
modules, failed = [], {}
for package in ("dockerdash", "machines"):
    root = importlib.import_module(package)
    modules.append(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        modules.append(info.name)
        try:
            importlib.import_module(info.name)
        except Exception as e:
            failed[info.name] = f"{type(e).__name__}: {e}"
print(json.dumps({"tools": tools, "modules": modules, "failed": failed}))
"""


@pytest.fixture(scope="session")
def runtime_python() -> Path:
    """A venv with requirements.lock alone, cached under var/ by the lock's digest."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    home = ROOT / "var" / f"runtime-venv-{digest}"
    python = home / "bin" / "python"
    if (home / ".complete").exists():
        return python
    shutil.rmtree(home, ignore_errors=True)
    venv.EnvBuilder(with_pip=False).create(home)
    # The installer is the test venv's own uv (or pip): nothing but the lock lands in `home`.
    uv = Path(sys.executable).parent / "uv"
    if uv.exists():
        command = [str(uv), "pip", "install", "-q", "--python", str(python)]
    else:
        command = [sys.executable, "-m", "pip", "install", "-q", "--prefix", str(home)]
    subprocess.run([*command, "--no-deps", "--require-hashes", "-r", str(LOCK)], check=True)
    (home / ".complete").touch()
    return python


def test_every_module_imports_from_the_runtime_lock_alone(runtime_python, tmp_path):
    # Only the two product packages on the path (links to them): not tests/, not the repo root.
    path = tmp_path / "path"
    path.mkdir()
    for package in ("dockerdash", "machines"):
        (path / package).symlink_to(ROOT / package)
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(path),
        "DJANGO_SETTINGS_MODULE": "dockerdash.settings",
        "DOCKERDASH_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [str(runtime_python), "-I", "-c", f"import sys; sys.path.insert(0, {str(path)!r})\n"
         + IMPORT_ALL, *TEST_TOOLS],
        cwd=path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    found = json.loads(done.stdout.splitlines()[-1])
    assert found["tools"] == [], "test tools importable from the runtime lock"
    missing_extras = {
        name: f"ModuleNotFoundError: No module named '{extra}'" for name, extra in EXTRAS.items()
    }
    failed = {
        name: error for name, error in found["failed"].items() if missing_extras.get(name) != error
    }
    assert failed == {}, "modules that need more than the runtime lock"
    # Every module was reached (the walk did not stop at a package that failed).
    expected = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in ("dockerdash", "machines")
        for p in (ROOT / package).rglob("*.py")
    }
    assert expected <= set(found["modules"])
