"""Helpers that know nothing of Django: SSH sessions, host images (and, later, engines)."""
