"""What Django and django-axes announce, in the audit log: logins (and failures, and
lockouts), user and role changes, permissions granted directly, provider-account changes.

Bounded as the login throttle is: a try refused because its user name or address is already
locked is neither counted by django-axes nor recorded here (a flood of them would otherwise
grow the log without end); the failure that sets a lock, and the lock, are.
"""

from __future__ import annotations

import contextvars

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from machines.audit.log import Action, record, request_address
from machines.models import Driver

USER_FIELDS = ("username", "email", "first_name", "last_name", "is_active", "is_staff")
USER_FLAGS = ("is_superuser",)


def _refused_while_locked(request) -> bool:
    # django-axes marks a request it refused as locked out without counting a failure
    # (axes_failures_since_start stays None); a failure it counted has a number there.
    return bool(getattr(request, "axes_locked_out", False)) and (
        getattr(request, "axes_failures_since_start", None) is None
    )


# Which way in, by the authentication backend Django names on the user.
PROVIDERS = {"OIDCBackend": "OpenID Connect", "LDAPBackend": "LDAP", "LocalBackend": "password"}


def _logged_in(sender, request, user, **kwargs) -> None:
    backend = getattr(user, "backend", "") or ""
    provider = PROVIDERS.get(backend.rsplit(".", 1)[-1], backend.rsplit(".", 1)[-1] or "session")
    record(
        Action.LOGIN,
        "logged in",
        user=user,
        address=request_address(request),
        detail=f"with {provider}",
    )


def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    if request is None or _refused_while_locked(request):
        return
    _failure(request, str(credentials.get("username", "") or ""))


def _failure(request, name: str) -> None:
    # Once per request, whichever of axes' lockout signal and Django's failure comes first.
    if getattr(request, "_audit_failure", False):
        return
    request._audit_failure = True
    record(
        Action.LOGIN_FAILED,
        "login failed",
        via="web",
        username=name or "(no user name)",
        address=request_address(request),
    )


def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    if request is None or _refused_while_locked(request):
        return
    _failure(request, username or "")  # the failure that set the lock comes first
    record(
        Action.LOCKOUT,
        "locked out after repeated failed logins",
        via="web",
        username=username or "(no user name)",
        address=ip_address,
    )


# -- users and roles --------------------------------------------------------------------


def _user_before(sender, instance, **kwargs) -> None:
    old = sender.objects.filter(pk=instance.pk).first() if instance.pk else None
    instance._audit_before = old


def _user_saved(sender, instance, created, update_fields=None, **kwargs) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login, recorded as such
    name = instance.get_username()
    if created:
        flags = [f for f in ("is_staff", "is_superuser") if getattr(instance, f)]
        record(Action.USER, "created user", target=name, detail=", ".join(flags))
        return
    old = getattr(instance, "_audit_before", None)
    if old is None:
        return
    changes = [
        f"{field}: {getattr(old, field)!r} → {getattr(instance, field)!r}"
        for field in USER_FIELDS + USER_FLAGS
        if getattr(old, field) != getattr(instance, field)
    ]
    if old.password != instance.password:
        changes.append("password changed")
    if changes:
        record(Action.USER, "changed user", target=name, detail="; ".join(changes))


def _user_deleted(sender, instance, **kwargs) -> None:
    record(Action.USER, "deleted user", target=instance.get_username())


def _roles_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    User = get_user_model()
    if reverse:  # group.user_set.add(...): the instance is the group
        users = list(User.objects.filter(pk__in=pk_set or ()))
        groups = [instance]
    else:
        users = [instance]
        groups = list(
            instance.groups.all() if action == "pre_clear" else Group.objects.filter(pk__in=pk_set)
        )
    if not groups or not users:
        return
    verb = "added to role" if action == "post_add" else "removed from role"
    for user in users:
        record(
            Action.USER,
            verb,
            target=user.get_username(),
            detail=", ".join(sorted(g.name for g in groups)),
        )


# -- permissions granted directly (to a user, or to a role's group) ---------------------------

#: Set while roles.ensure_roles() puts the three roles' permissions in place after migrate.
ensuring_roles: contextvars.ContextVar[bool] = contextvars.ContextVar("ensuring", default=False)


def _permissions_changed(sender, instance, action, reverse, pk_set, model, **kwargs) -> None:
    if action not in ("post_add", "post_remove") or not pk_set or ensuring_roles.get():
        return
    if reverse:  # permission.user_set.add(...) / permission.group_set.add(...)
        holders, perms = list(model.objects.filter(pk__in=pk_set)), [instance]
    else:
        holders, perms = [instance], list(Permission.objects.filter(pk__in=pk_set))
    names = ", ".join(sorted(f"{p.content_type.app_label}.{p.codename}" for p in perms))
    verb = "granted" if action == "post_add" else "revoked"
    for holder in holders:
        kind = "role" if isinstance(holder, Group) else "user"
        target = holder.name if kind == "role" else holder.get_username()
        record(Action.PERMISSION, f"{verb} permissions to {kind}", target=target, detail=names)


# -- provider accounts (Driver rows) ------------------------------------------------------


def _driver_before(sender, instance, **kwargs) -> None:
    instance._audit_before = Driver.objects.filter(pk=instance.pk).first() if instance.pk else None


def _driver_saved(sender, instance, created, **kwargs) -> None:
    label = f"{instance.name} ({instance.kind})"
    if created:
        record(Action.DRIVER, "added provider account", target=label)
        return
    old = getattr(instance, "_audit_before", None)
    if old is None:
        return
    changes = [f for f in ("name", "kind") if getattr(old, f) != getattr(instance, f)]
    # Which settings and secrets changed, by name: values stay out (secrets above all).
    changes += [
        f"setting {key}"
        for key in sorted(set(old.settings) | set(instance.settings))
        if old.settings.get(key) != instance.settings.get(key)
    ]
    changes += [
        f"secret {key}"
        for key in sorted(set(old.secrets) | set(instance.secrets))
        if old.secrets.get(key) != instance.secrets.get(key)
    ]
    if changes:
        record(Action.DRIVER, "changed provider account", target=label, detail=", ".join(changes))


def _driver_deleted(sender, instance, **kwargs) -> None:
    record(Action.DRIVER, "removed provider account", target=f"{instance.name} ({instance.kind})")


def connect() -> None:
    User = get_user_model()
    user_logged_in.connect(_logged_in, dispatch_uid="audit-login")
    user_login_failed.connect(_login_failed, dispatch_uid="audit-login-failed")
    user_locked_out.connect(_locked_out, dispatch_uid="audit-lockout")
    pre_save.connect(_user_before, sender=User, dispatch_uid="audit-user-before")
    post_save.connect(_user_saved, sender=User, dispatch_uid="audit-user-saved")
    post_delete.connect(_user_deleted, sender=User, dispatch_uid="audit-user-deleted")
    m2m_changed.connect(_roles_changed, sender=User.groups.through, dispatch_uid="audit-roles")
    for through in (User.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(_permissions_changed, sender=through, dispatch_uid=f"audit-{through}")
    pre_save.connect(_driver_before, sender=Driver, dispatch_uid="audit-driver-before")
    post_save.connect(_driver_saved, sender=Driver, dispatch_uid="audit-driver-saved")
    post_delete.connect(_driver_deleted, sender=Driver, dispatch_uid="audit-driver-deleted")
