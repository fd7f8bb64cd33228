"""First run: create the admin account if no user exists yet (no default password)."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from machines.services.roles import ADMIN


class Command(BaseCommand):
    help = "Create the first admin user (only when there is no user at all)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.getenv("DOCKERDASH_ADMIN_USER", "admin"))

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        if User.objects.exists():
            self.stdout.write("Log in with your existing account (users exist already).")
            return
        password = os.getenv("DOCKERDASH_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        user.groups.add(Group.objects.get(name=ADMIN))
        shown = (
            "(from DOCKERDASH_ADMIN_PASSWORD)"
            if os.getenv("DOCKERDASH_ADMIN_PASSWORD")
            else password
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the admin account.\n  user:     {username}\n  password: {shown}\n"
                "This password is shown once; change it under Admin > Users."
            )
        )
