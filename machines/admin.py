from __future__ import annotations

from django.contrib import admin

from .models import ClientCertificate, Driver, Machine, Operation, OperationLogLine


@admin.register(Driver)
class DriverAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "created_at"]
    # Secrets are edited through the driver forms, never shown.
    exclude = ["secrets"]


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin):
    list_display = ["name", "driver", "state", "ip", "docker_version", "last_seen"]
    list_filter = ["state", "driver"]
    search_fields = ["name", "ip"]
    exclude = ["ssh_private_key", "tls_server_key"]
    readonly_fields = ["ssh_host_key", "tls_server_cert", "tls_server_expires_at"]


class LogLineInline(admin.TabularInline):
    model = OperationLogLine
    extra = 0
    readonly_fields = ["seq", "at", "step", "text"]
    can_delete = False


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
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
