"""Read-only views of the saved states and the rollback log.

States are written only by save_migrations_state and by rollbacks, never by hand.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .models import MigrationState, RollbackLog


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(MigrationState)
class MigrationStateAdmin(ReadOnlyAdmin):
    list_display = ["short_commit", "tags_list", "saved_at", "migration_count"]
    search_fields = ["commit"]
    readonly_fields = ["commit", "tags", "saved_at", "migrations", "squashes"]

    @admin.display(description=_("commit"), ordering="commit")
    def short_commit(self, obj: MigrationState) -> str:
        return obj.short_commit

    @admin.display(description=_("tags"))
    def tags_list(self, obj: MigrationState) -> str:
        return ", ".join(obj.tags) or "—"

    @admin.display(description=_("migrations"))
    def migration_count(self, obj: MigrationState) -> int:
        return len(obj.migrations)


@admin.register(RollbackLog)
class RollbackLogAdmin(ReadOnlyAdmin):
    list_display = [
        "started_at",
        "status",
        "from_commit_short",
        "to_commit_short",
        "user",
        "duration",
    ]
    list_filter = ["status", "source"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in RollbackLog._meta.fields]

    @admin.display(description=_("from"))
    def from_commit_short(self, obj: RollbackLog) -> str:
        return f"{obj.from_commit[:8]} {', '.join(obj.from_tags)}".strip()

    @admin.display(description=_("to"))
    def to_commit_short(self, obj: RollbackLog) -> str:
        return f"{obj.to_commit[:8]} {', '.join(obj.to_tags)}".strip()
