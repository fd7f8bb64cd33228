"""API tokens from a shell: `api_token create --user U --scope read --expires 30d`, `list`,
`revoke KEY` or `revoke --all --user U` (the API tokens page's rules)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from machines.models import ApiToken
from machines.services import tokens


def _user(name: str):
    try:
        return get_user_model().objects.get(username=name)
    except get_user_model().DoesNotExist:
        raise CommandError(f"No user named {name!r}") from None


class Command(BaseCommand):
    help = "Create, list and revoke API tokens (the secret is printed once, at creation)."
    # The system checks load every page and driver (the cloud SDKs: over a second); `serve`
    # and `migrate` run them, a token needs none of it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create")
        create.add_argument("--user", required=True)
        create.add_argument("--scope", choices=tokens.SCOPE_ORDER, default="read")
        create.add_argument("--expires", default="", help="e.g. 30d, 12h, 2w (default 90d)")
        create.add_argument("--selector", default="", help="a tag: env=prod (or env)")
        create.add_argument("--name", default="cli")
        listing = sub.add_parser("list")
        listing.add_argument("--user", default="")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("key", nargs="?", help="the token's key (as `list` shows it)")
        revoke.add_argument("--all", action="store_true", help="every token of --user")
        revoke.add_argument("--user", default="")

    def handle(self, *args, action: str, **o):
        getattr(self, f"_{action}")(**o)

    def _create(self, user, scope, expires, selector, name, **_):
        try:
            duration = tokens.parse_duration(expires) if expires else None
            token, secret = tokens.mint(
                _user(user), name, scope, expires_in=duration, selector=selector
            )
        except tokens.TokenError as e:
            raise CommandError(str(e)) from None
        self.stderr.write(
            f"Token {token.key} ({token.scope}, expires {token.expires_at:%Y-%m-%d %H:%M}); "
            "shown once:"
        )
        self.stdout.write(secret)

    def _list(self, user, **_):
        rows = ApiToken.objects.select_related("user")
        if user:
            rows = rows.filter(user=_user(user))
        for t in rows:
            used = (
                f"{t.last_used_at:%Y-%m-%d %H:%M} from {t.last_used_address}"
                if (t.last_used_at)
                else "never used"
            )
            self.stdout.write(
                f"{t.key}\t{t.user.get_username()}\t{t.name}\t{t.scope}\t{t.selector or '-'}"
                f"\t{t.status}\texpires {t.expires_at:%Y-%m-%d}\t{used}"
            )

    def _revoke(self, key, all, user, **_):
        if all:
            if not user:
                raise CommandError("--all needs --user")
            self.stdout.write(f"Revoked {tokens.revoke_all(_user(user))} token(s)")
            return
        token = ApiToken.objects.filter(key=key or "").first()
        if token is None:
            raise CommandError(f"No token {key!r} (see `api_token list`)")
        tokens.revoke(token)
        self.stdout.write(f"Revoked {token.key}")
