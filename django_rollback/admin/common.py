"""What every page of the panel shares: the selected database, markup helpers, base admins."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin
from django.db import DEFAULT_DB_ALIAS
from django.db.models import QuerySet
from django.http import HttpRequest, QueryDict
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy, ngettext

from ..models import MigrationKey, MigrationState, short_commit

ROLLBACK_PERMISSION = f"{MigrationState._meta.app_label}.rollback_migrationstate"


def selected_database(request: HttpRequest) -> str:
    """The database the panel looks at: ?database=alias when the project has several."""
    alias = request.GET.get("database") or request.POST.get("database")
    if not alias and "_changelist_filters" in request.GET:  # links from the filtered list
        alias = QueryDict(request.GET["_changelist_filters"]).get("database")
    return alias if alias in settings.DATABASES else DEFAULT_DB_ALIAS


def with_database(url: str, request: HttpRequest) -> str:
    """The URL, keeping the panel on the database the request is about."""
    database = selected_database(request)
    return url if database == DEFAULT_DB_ALIAS else f"{url}?{urlencode({'database': database})}"


def group_by_app(keys: frozenset[MigrationKey] | set[MigrationKey]) -> list[tuple[str, list[str]]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for app, name in sorted(keys):
        grouped[app].append(name)
    return sorted(grouped.items())


def tag_badges(tags: list[str]) -> str:
    if not tags:
        return format_html('<span class="rollback-quiet">{}</span>', "—")
    return format_html_join(" ", '<span class="rollback-tag">{}</span>', ((t,) for t in tags))


def commit_code(commit: str) -> str:
    return format_html(
        '<code class="rollback-commit" title="{}" data-commit="{}">{}</code>',
        commit,
        commit,
        short_commit(commit),
    )


def migration_count_text(count: int) -> str:
    return ngettext("%(count)d migration", "%(count)d migrations", count) % {"count": count}


class DatabaseFilter(admin.SimpleListFilter):
    """Shown only when the project has several databases; each keeps its own states."""

    title = gettext_lazy("database")
    parameter_name = "database"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(alias, alias) for alias in settings.DATABASES]

    def has_output(self) -> bool:
        return len(settings.DATABASES) > 1

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset  # get_queryset() already reads the alias from the request


if TYPE_CHECKING:  # ModelAdmin is generic in django-stubs only, not at run time
    AnyModelAdmin = admin.ModelAdmin[Any]
    StateModelAdmin = admin.ModelAdmin[MigrationState]
else:
    AnyModelAdmin = StateModelAdmin = admin.ModelAdmin


class ReadOnlyAdmin(AnyModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).using(selected_database(request))


class AuditAdmin(ReadOnlyAdmin):
    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the audit trail is kept forever
