"""The audit log: every rollback, dry run and rehearsal, read-only and kept forever."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _, gettext_lazy

from .. import services
from ..models import RollbackLog
from .common import (
    AuditAdmin,
    DatabaseFilter,
    commit_code,
    migration_count_text,
    tag_badges,
    with_database,
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

    change_form_template = "admin/django_rollback/rollbacklog/change_form.html"
    refresh_seconds = 2  # how often the page reloads itself while the rollback runs (no JS)

    class Media:
        css = {"all": ["django_rollback/admin.css"]}
        js = ["django_rollback/live.js"]

    def get_urls(self) -> list[URLPattern]:
        app, model = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name=f"{app}_{model}_progress",
            ),
            *super().get_urls(),
        ]

    def progress_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The entry's progress as JSON, polled by its live page (same view permission)."""
        log = self.get_object(request, object_id)
        if log is None:
            raise Http404
        if not self.has_view_permission(request, log):
            raise PermissionDenied
        return JsonResponse(services.live_progress(log).as_dict())

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        context: dict[str, Any] = {}
        log = self.get_object(request, object_id)
        if log is not None and self.has_view_permission(request, log):
            # Before the page is built: a dead runner's entry becomes "interrupted" here.
            live = services.live_progress(log)
            context.update(
                live=live,
                live_steps_percent=(
                    round(100 * live.steps_done / live.steps_total) if live.steps_total else 0
                ),
                refresh_seconds=self.refresh_seconds if live.active else None,
                progress_url=with_database(
                    reverse("admin:django_rollback_rollbacklog_progress", args=[log.pk]), request
                ),
            )
        context.update(extra_context or {})
        return super().change_view(request, object_id, form_url, context)

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        several = len(settings.DATABASES) > 1
        return [*self.list_display, "database"] if several else list(self.list_display)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Every field is shown read-only; the fieldsets above name each one as a string.
        return [str(field) for _title, options in self.fieldsets for field in options["fields"]]

    @admin.display(description=gettext_lazy("from → to"))
    def from_to(self, obj: RollbackLog) -> str:
        return format_html(
            '<span class="rollback-nowrap">{} {} → {} {}</span>',
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
        return format_html('<ol class="rollback-steps">{}</ol><ul>{}</ul>', items, warnings)

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
                    s.get("saved_at", ""),
                    migration_count_text(len(s.get("migrations") or [])),
                )
                for s in obj.pruned_states
            ),
        )
