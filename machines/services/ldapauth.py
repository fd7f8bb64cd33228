"""The LDAP login backend (django-auth-ldap): bind, user search, group search, then the same
group mapping as single sign-on (machines/services/sso.py). Named in AUTHENTICATION_BACKENDS
only when DOCKERDASH_LDAP_URI is set, so python-ldap (a C extension) is imported only then."""

from __future__ import annotations

from django_auth_ldap.backend import LDAPBackend as BaseLDAPBackend

from machines.services.sso import sync_user


class LDAPBackend(BaseLDAPBackend):
    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is not None:
            # The directory's groups now: a user removed from one loses what it gave.
            sync_user(user, sorted(ldap_user.group_names), "ldap")
        return user
