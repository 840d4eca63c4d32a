"""The audit log: every rollback, dry run and rehearsal, read-only and kept forever."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _, gettext_lazy

from ..models import RollbackLog
from ..templatetags.rollback_admin import admin_date
from .common import (
    AuditAdmin,
    DatabaseFilter,
    commit_code,
    migration_count_text,
    tag_badges,
)


@admin.register(RollbackLog)
class RollbackLogAdmin(AuditAdmin):
    list_display = ["started_at", "user", "from_to", "status_badge", "duration_display", "source"]
    list_filter = ["status", "source", DatabaseFilter]
    search_fields = ["^from_commit", "^to_commit", "user", "from_tags", "to_tags"]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["status_badge", "started_at", "finished_at", "duration_display"]}),
        (gettext_lazy("Who"), {"fields": ["user", "source", "host", "database"]}),
        (gettext_lazy("From → to"), {"fields": ["from_state", "to_state"]}),
        (gettext_lazy("What ran"), {"fields": ["plan_display", "output_display", "error"]}),
        (gettext_lazy("States removed by this rollback"), {"fields": ["pruned_display"]}),
    ]

    class Media:
        css = {"all": ["django_rollback/admin.css"]}

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        several = len(settings.DATABASES) > 1
        return [*self.list_display, "database"] if several else list(self.list_display)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Every field is shown read-only; the fieldsets above name each one as a string.
        return [str(field) for _title, options in self.fieldsets for field in options["fields"]]

    @admin.display(description=gettext_lazy("from → to"))
    def from_to(self, obj: RollbackLog) -> str:
        # each side stays on one line; "→ to" wraps under "from" so the column stays narrow
        return format_html(
            '<span class="rollback-nowrap">{} {}</span> '
            '<span class="rollback-nowrap">→ {} {}</span>',
            commit_code(obj.from_commit),
            tag_badges(list(obj.from_tags)),
            commit_code(obj.to_commit),
            tag_badges(list(obj.to_tags)),
        )

    @admin.display(description=gettext_lazy("from"))
    def from_state(self, obj: RollbackLog) -> str:
        return format_html("{} {}", commit_code(obj.from_commit), tag_badges(list(obj.from_tags)))

    @admin.display(description=gettext_lazy("to"))
    def to_state(self, obj: RollbackLog) -> str:
        return format_html("{} {}", commit_code(obj.to_commit), tag_badges(list(obj.to_tags)))

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: RollbackLog) -> str:
        return format_html(
            '<span class="rollback-badge rollback-status-{}">{}</span>',
            obj.status,
            obj.get_status_display(),
        )

    @admin.display(description=gettext_lazy("duration"), ordering="duration")
    def duration_display(self, obj: RollbackLog) -> str:
        return "—" if obj.duration is None else f"{obj.duration:.2f} s"

    @admin.display(description=gettext_lazy("plan"))
    def plan_display(self, obj: RollbackLog) -> str:
        plan = obj.plan if isinstance(obj.plan, dict) else {}
        steps = plan.get("steps") or []
        if not steps:
            return format_html('<span class="rollback-quiet">{}</span>', _("no steps"))
        items = format_html_join(
            "",
            "<li><code>{}</code><ul>{}</ul></li>",
            (
                (
                    step.get("migration", ""),
                    format_html_join(
                        "", "<li>{}</li>", ((op,) for op in step.get("operations") or [])
                    ),
                )
                for step in steps
            ),
        )
        warnings = format_html_join(
            "", '<li class="rollback-warning">{}</li>', ((w,) for w in plan.get("warnings", []))
        )
        return format_html(
            '<ol class="rollback-steps">{}</ol><ul class="rollback-plan-warnings">{}</ul>',
            items,
            warnings,
        )

    @admin.display(description=gettext_lazy("output"))
    def output_display(self, obj: RollbackLog) -> str:
        return format_html('<pre class="rollback-pre">{}</pre>', obj.output or "—")

    @admin.display(description=gettext_lazy("pruned states"))
    def pruned_display(self, obj: RollbackLog) -> str:
        if not obj.pruned_states:
            return format_html('<span class="rollback-quiet">{}</span>', _("none"))
        return format_html_join(
            "",
            '<div>{} {} <span class="rollback-quiet">{} · {}</span></div>',
            (
                (
                    commit_code(str(s.get("commit", ""))),
                    tag_badges(list(s.get("tags") or [])),
                    admin_date(s.get("saved_at")),
                    migration_count_text(len(s.get("migrations") or [])),
                )
                for s in obj.pruned_states
            ),
        )
