"""The suite's password hasher: PBKDF2-SHA256 as in production, with 1,000 rounds instead of
Django's 1,500,000 (0.36 s per hash here; the suite makes users by the hundred). A hash names
its own rounds, so the dashboards the suite starts in other processes (dockerdash's settings,
the default rounds) verify these passwords too."""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
