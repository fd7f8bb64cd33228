from __future__ import annotations

import json

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from machines.audit.log import Action, record
from machines.fields import hidden_options
from machines.models import (
    AuditEntry,
    ClientCertificate,
    Driver,
    Machine,
    Operation,
    OperationLogLine,
)


def _changed_fields(message) -> str:
    """The field names of the admin's change message ([{"changed": {"fields": [...]}}])."""
    changed = [part.get("changed", {}) for part in message or [] if isinstance(part, dict)]
    return ", ".join(field for part in changed for field in part.get("fields", []))


class AuditedAdmin(admin.ModelAdmin):
    """Every addition, change and deletion made in the admin is in the audit log too (who,
    which object, which fields; never a value), besides Django's own admin history."""

    def _audit(self, verb: str, obj, detail: str = "") -> None:
        name = self.opts.verbose_name
        machine = obj if isinstance(obj, Machine) else None
        target = str(obj)[:255]
        record(Action.ADMIN, f"admin: {verb} {name}", machine=machine, target=target, detail=detail)

    def log_addition(self, request, obj, message):
        self._audit("added", obj, _changed_fields(message))
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        self._audit("changed", obj, _changed_fields(message))
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            self._audit("deleted", obj)
        return super().log_deletions(request, queryset)


class SuperuserOnlyChanges:
    """Viewable by whoever may view; added, changed or deleted by superusers alone: rows
    whose fields reach the dashboard's host (an engine URL, an install script run as root)
    are made by the create flow, never edited here by a staff account."""

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser


class GuardedUserAdmin(UserAdmin):
    """Django's user admin, where superuser status and single permissions are a superuser's
    to give. The admin role holds auth.change_user (admins manage accounts and make other
    admins), but a superuser is more than an admin (machine rows, every permission): an admin
    may not tick it (its own or another's), grant single permissions, or change, set the
    password of or delete a superuser's account (the password form asks this too)."""

    GUARDED = ("is_superuser", "user_permissions")

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else fields + self.GUARDED

    def _of_a_superuser(self, request, obj) -> bool:
        return obj is not None and obj.is_superuser and not request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return not self._of_a_superuser(request, obj) and super().has_change_permission(
            request, obj
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return not self._of_a_superuser(request, obj) and super().has_delete_permission(
            request, obj
        )


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), GuardedUserAdmin)


@admin.register(Driver)
class DriverAdmin(AuditedAdmin):
    list_display = ["name", "kind", "created_at"]
    # Secrets are edited through the driver forms, never shown.
    exclude = ["secrets"]


@admin.register(Machine)
class MachineAdmin(SuperuserOnlyChanges, AuditedAdmin):
    list_display = ["name", "driver", "state", "ip", "docker_version", "last_seen"]
    list_filter = ["state", "driver"]
    search_fields = ["name", "ip"]
    # The options are shown with cloud-init user data as its size and hash (it holds
    # passwords and tokens), never edited here.
    exclude = ["ssh_private_key", "tls_server_key", "driver_options"]
    readonly_fields = ["options", "ssh_host_key", "tls_server_cert", "tls_server_expires_at"]

    @admin.display(description="Driver options")
    def options(self, obj: Machine) -> str:
        return json.dumps(hidden_options(obj.driver_options or {}), indent=2, sort_keys=True)


class LogLineInline(admin.TabularInline):
    model = OperationLogLine
    extra = 0
    readonly_fields = ["seq", "at", "step", "text"]
    can_delete = False


@admin.register(Operation)
class OperationAdmin(SuperuserOnlyChanges, AuditedAdmin):
    list_display = ["machine_name", "kind", "status", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    inlines = [LogLineInline]


@admin.register(ClientCertificate)
class ClientCertificateAdmin(admin.ModelAdmin):
    """The record of who downloaded which certificate; revoking is on the Certificates page
    (it rotates every engine's trusted bundle) or `manage.py revoke_client_certs`."""

    list_display = ["username", "machine_name", "serial", "issued_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["username", "machine_name", "serial"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the record is the audit trail; deleting it revokes nothing


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the application never edits or deletes the audit log (the retention
    setting, DOCKERDASH_AUDIT_RETENTION_DAYS, prunes it)."""

    list_display = ["at", "username", "via", "action", "what", "machine_name", "target"]
    list_filter = ["action", "via"]
    search_fields = ["username", "what", "machine_name", "target"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
