"""The three roles, as Django groups with permissions, kept in place after every migrate."""

from __future__ import annotations

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"

_VIEW = [
    "machines.view_machine",
    "machines.view_driver",
    "machines.view_operation",
    "machines.view_operationlogline",
]
# No role holds change_machine: only the Django admin uses it, and there a machine's row
# (engine URL, install script) is for superusers alone (machines/admin.py).
_OPERATE = ["machines.operate_machine"]
_ADMIN = [
    "machines.add_machine",
    "machines.delete_machine",
    "machines.add_driver",
    "machines.change_driver",
    "machines.delete_driver",
    "machines.view_clientcertificate",
    "machines.revoke_clientcertificate",
    "machines.view_auditentry",
    "machines.view_webhook",
    "machines.add_webhook",
    "machines.change_webhook",
    "machines.delete_webhook",
    "auth.view_user",
    "auth.add_user",
    "auth.change_user",
    "auth.delete_user",
    "auth.view_group",
]

ROLE_PERMISSIONS = {
    VIEWER: _VIEW,
    OPERATOR: _VIEW + _OPERATE,
    ADMIN: _VIEW + _OPERATE + _ADMIN,
}


def ensure_roles(**kwargs) -> None:
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    # Permissions are normally created after every app's post_migrate; make sure ours and
    # auth's exist before the groups point at them.
    for label in ("auth", "machines"):
        create_permissions(apps.get_app_config(label), verbosity=0)
    from machines.audit.signals import ensuring_roles

    # The roles as the code defines them, after every migrate: not a grant to record.
    token = ensuring_roles.set(True)
    try:
        for role, perms in ROLE_PERMISSIONS.items():
            group, _ = Group.objects.get_or_create(name=role)
            wanted = []
            for perm in perms:
                app_label, codename = perm.split(".")
                wanted.append(
                    Permission.objects.get(content_type__app_label=app_label, codename=codename)
                )
            group.permissions.set(wanted)
    finally:
        ensuring_roles.reset(token)
