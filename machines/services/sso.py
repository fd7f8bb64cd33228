"""Single sign-on: OpenID Connect (mozilla-django-oidc) and what an identity provider's
groups mean here (a global role or a team), re-synced at every login.

The mapping `DOCKERDASH_SSO_GROUP_MAP` is `idp-group=role:admin;ops=team:web`: an IdP group
gives a global role (viewer / operator / admin) or membership of a team. Roles and the
teams the mapping names follow the IdP at each login (a user removed from a group loses what
it gave); teams it does not name are managed on the dashboard and left alone.
"""

from __future__ import annotations

from functools import cache

import requests
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from machines.audit import log as audit
from machines.services import roles

ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
ROLE_NAMES = (roles.VIEWER, roles.OPERATOR, roles.ADMIN)


class MappingError(ValueError):
    """A group mapping that cannot be read, in one sentence."""


def parse_group_map(text: str) -> dict[str, tuple[str, str]]:
    """`a=role:admin;b=team:web` -> {"a": ("role", "admin"), "b": ("team", "web")}."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        group, sep, target = item.rpartition("=")
        kind, _, name = target.partition(":")
        if not sep or not group.strip() or kind not in ("role", "team") or not name.strip():
            raise MappingError(
                f"{item!r} is not a group mapping: write idp-group=role:admin or "
                "idp-group=team:NAME, separated by ';'."
            )
        if kind == "role" and name not in ROLE_NAMES:
            raise MappingError(f"{name!r} is not a role: use viewer, operator or admin.")
        mapping[group.strip()] = (kind, name.strip())
    return mapping


def sync_user(user, idp_groups: list[str], provider: str) -> None:
    """Give the user exactly what their IdP groups map to: the global roles (Django's role
    groups; the mapping's roles only) and the teams the mapping names."""
    from machines.models.teams import Team

    mapping = parse_group_map(settings.SSO_GROUP_MAP)
    wanted = [mapping[g] for g in idp_groups if g in mapping]
    role_names = {name for kind, name in wanted if kind == "role"}
    user.groups.set(Group.objects.filter(name__in=role_names))  # audited by the m2m signal
    mapped_teams = {name for kind, name in mapping.values() if kind == "team"}
    team_names = {name for kind, name in wanted if kind == "team"}
    for team in Team.objects.filter(name__in=mapped_teams):
        member = team.members.filter(pk=user.pk).exists()
        if team.name in team_names and not member:
            team.members.add(user)
            audit.record(audit.Action.USER, "joined team", target=team.name, username=str(user))
        elif team.name not in team_names and member:
            team.members.remove(user)
            audit.record(audit.Action.USER, "left team", target=team.name, username=str(user))
    user.__dict__.pop("_global_role", None)
    user.__dict__.pop("_team_grants", None)
    user.sso_provider = provider


@cache
def discovery(issuer: str) -> dict:
    """The provider's own description of its endpoints (read once per process)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return response.json()


def oidc_setting(attr: str, *args):
    if attr in ENDPOINTS:
        return discovery(settings.OIDC_ISSUER)[ENDPOINTS[attr]]
    return import_from_settings(attr, *args)


class OIDCBackend(OIDCAuthenticationBackend):
    """Users made at first login, named by a claim (preferred_username), roles and teams
    synced from the groups claim at every login."""

    get_settings = staticmethod(oidc_setting)

    def filter_users_by_claims(self, claims):
        name = claims.get(settings.OIDC_USERNAME_CLAIM)
        return (
            self.UserModel.objects.filter(username=name) if name else self.UserModel.objects.none()
        )

    def create_user(self, claims):
        user = self.UserModel.objects.create_user(
            claims[settings.OIDC_USERNAME_CLAIM], email=claims.get("email", "")
        )
        user.set_unusable_password()
        user.save(update_fields=["password"])
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
        sync_user(user, [str(g) for g in groups], "oidc")
        return user

    def verify_claims(self, claims) -> bool:
        return bool(claims.get(settings.OIDC_USERNAME_CLAIM))


class OIDCLoginView(OIDCAuthenticationRequestView):
    get_settings = staticmethod(oidc_setting)


class LocalBackend(ModelBackend):
    """Passwords stored here, unless DOCKERDASH_LOCAL_LOGIN=0 switches them off (roles and
    permissions still come from this backend)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.LOCAL_LOGIN:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
