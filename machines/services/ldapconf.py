"""django-auth-ldap's settings from the environment (README "Users, teams and single
sign-on"): where users and groups are, and how they are found."""

from __future__ import annotations


def ldap_settings(env) -> dict:
    import ldap
    from django_auth_ldap.config import GroupOfNamesType, LDAPSearch

    user_filter = env.get("DOCKERDASH_LDAP_USER_FILTER", "(uid=%(user)s)")
    group_filter = env.get("DOCKERDASH_LDAP_GROUP_FILTER", "(objectClass=groupOfNames)")
    return {
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(
            env["DOCKERDASH_LDAP_USER_BASE"], ldap.SCOPE_SUBTREE, user_filter
        ),
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(
            env["DOCKERDASH_LDAP_GROUP_BASE"], ldap.SCOPE_SUBTREE, group_filter
        ),
        "AUTH_LDAP_GROUP_TYPE": GroupOfNamesType(name_attr="cn"),
        "AUTH_LDAP_USER_ATTR_MAP": {"email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_START_TLS": env.get("DOCKERDASH_LDAP_START_TLS", "") in ("1", "true", "True"),
    }
