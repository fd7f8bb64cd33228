"""Production settings pass Django's deployment checks; migrations are complete."""

from __future__ import annotations

import os
import subprocess

from .helpers import MANAGE, run


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run(" ".join([MANAGE, *args]), env, check=False, timeout=120)


def test_production_mode_passes_check_deploy(tmp_path):
    # A production environment: not the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE.
    base = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {
        **base,
        "DOCKERDASH_DEBUG": "0",
        "DOCKERDASH_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-0123456789",
        "DOCKERDASH_ALLOWED_HOSTS": "dash.example.com",
        "DOCKERDASH_DATA_DIR": str(tmp_path),
    }
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_migrations_are_complete(tmp_path):
    env = {**os.environ, "DOCKERDASH_DATA_DIR": str(tmp_path)}
    result = _manage("makemigrations", "--check", "--dry-run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
