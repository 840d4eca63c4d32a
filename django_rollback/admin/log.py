"""The audit log: every rollback, dry run and rehearsal, read-only and kept forever."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connections
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _, gettext_lazy, ngettext

from .. import archive, services
from ..exceptions import RollbackError
from ..models import RollbackLog
from ..planning import DataLoss
from ..presenters.outcomes import restore_item_line, restore_preview_sentence, restored_sentence
from ..presenters.text import describe_archive_item, describe_size
from ..templatetags.rollback_admin import admin_date
from .approvals import ApprovalViewsMixin, AwaitingApprovalFilter
from .common import (
    ROLLBACK_PERMISSION,
    AuditAdmin,
    DatabaseFilter,
    commit_code,
    migration_count_text,
    tag_badges,
    with_database,
)
from .fleet import fleet_outcomes


@admin.register(RollbackLog)
class RollbackLogAdmin(ApprovalViewsMixin, AuditAdmin):
    list_display = ["started_at", "user", "from_to", "status_badge", "duration_display", "source"]
    list_filter = [AwaitingApprovalFilter, "status", "source", DatabaseFilter]
    search_fields = ["^from_commit", "^to_commit", "user", "from_tags", "to_tags"]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["status_badge", "started_at", "finished_at", "duration_display"]}),
        (gettext_lazy("Who"), {"fields": ["user", "source", "host", "database"]}),
        (ApprovalViewsMixin.approval_section, {"fields": ["approval_display"]}),
        (gettext_lazy("From → to"), {"fields": ["from_state", "to_state"]}),
        (gettext_lazy("What ran"), {"fields": ["plan_display", "output_display", "error"]}),
        (gettext_lazy("States removed by this rollback"), {"fields": ["pruned_display"]}),
        (gettext_lazy("Archive of the data it dropped"), {"fields": ["archive_display"]}),
    ]
    restore_template = "admin/django_rollback/rollbacklog/restore.html"

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
            path(
                "<path:object_id>/restore/",
                self.admin_site.admin_view(self.restore_view),
                name=f"{app}_{model}_restore",
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

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        # The live panel above the fieldsets (change_form.html) shows these: once is enough.
        shown_live = {"status_badge", "output_display"}
        return [
            (title, {**options, "fields": [f for f in options["fields"] if f not in shown_live]})
            for title, options in fieldsets
        ]

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
        if "fleet" in plan:  # a django-tenants fleet: one outcome per schema
            return fleet_outcomes(obj)
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
        kept = kept_lines(plan)
        warnings = format_html_join(
            "",
            '<li class="rollback-warning">{}</li>',
            ((w,) for w in plan.get("warnings", []) if w not in kept),
        )
        return format_html(
            '<ol class="rollback-steps">{}</ol><ul class="rollback-plan-warnings">{}</ul>'
            '<ul class="rollback-plan-kept">{}</ul>',
            items,
            warnings,
            format_html_join("", '<li class="rollback-kept">{}</li>', ((k,) for k in kept)),
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

    # --- the archive and its restore -----------------------------------------------------

    @admin.display(description=gettext_lazy("archive"))
    def archive_display(self, obj: RollbackLog) -> str:
        status = archive.archive_status(obj)
        if status is archive.ArchiveStatus.NONE:
            return format_html('<span class="rollback-quiet">{}</span>', _("nothing archived"))
        document = archive.archive_of(obj)
        items = format_html_join(
            "",
            "<li>{}</li>",
            ((describe_archive_item(item),) for item in archive.archive_items(obj)),
        )
        sizes = ngettext(
            "%(rows)d row, %(size)s", "%(rows)d rows, %(size)s", document.get("rows", 0)
        ) % {"rows": document.get("rows", 0), "size": describe_size(document.get("bytes"))}
        state = {
            archive.ArchiveStatus.KEPT: _("kept, not restored yet"),
            archive.ArchiveStatus.RESTORED: _("restored at %(when)s")
            % {"when": document.get("restored_at")},
            archive.ArchiveStatus.PURGED: _("purged at %(when)s")
            % {"when": document.get("purged_at")},
        }[status]
        action = mark_safe("")
        if status is archive.ArchiveStatus.KEPT:
            missing = archive.missing_targets(connections[obj._state.db or "default"], obj)
            if missing:
                action = format_html(
                    '<p class="rollback-quiet" id="archive-not-yet">{}</p>',
                    _("Restorable once a release re-creates %(what)s (migrate).")
                    % {"what": ", ".join(missing[:3])},
                )
            else:
                url = reverse("admin:django_rollback_rollbacklog_restore", args=[obj.pk])
                action = format_html(
                    '<p><a class="button" id="archive-restore" href="{}">{}</a></p>',
                    url,
                    _("Restore archived data"),
                )
        return format_html(
            '<div id="rollback-archive"><p>{} · {}</p><ul>{}</ul>{}</div>',
            state,
            sizes,
            items,
            action,
        )

    def restore_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what would come back and what would be skipped (a restore rolled back).
        POST: the restore. Same permission as a rollback."""
        if not self.has_view_permission(request) or not request.user.has_perm(ROLLBACK_PERMISSION):
            raise PermissionDenied
        log = self.get_object(request, object_id)
        if log is None:
            return HttpResponseRedirect(
                with_database(reverse("admin:django_rollback_rollbacklog_changelist"), request)
            )
        entry_url = with_database(
            reverse("admin:django_rollback_rollbacklog_change", args=[log.pk]), request
        )
        try:
            result = archive.restore(log, fake=request.method != "POST")
        except RollbackError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(entry_url)
        if request.method == "POST":
            self.message_user(request, restored_sentence(result) + ".", messages.SUCCESS)
            for outcome in result.outcomes:  # the command's lines, one message each
                self.message_user(request, restore_item_line(outcome, fake=False), messages.INFO)
            return HttpResponseRedirect(entry_url)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Restore the archive of rollback %(id)s") % {"id": log.pk},
            "subtitle": None,
            "opts": self.opts,
            "original": log,
            "log": log,
            "result": result,
            "summary": restore_preview_sentence(result),
            "entry_url": entry_url,
            "media": self.media,
        }
        return TemplateResponse(request, self.restore_template, context)


def kept_lines(plan: dict[str, Any]) -> list[str]:
    """The plan's lines about what the archive keeps: its "kept" list, or for entries saved
    before it existed, the archived data loss that their "warnings" held."""
    if "kept" in plan:
        return list(plan["kept"])
    return [
        f"{step.get('migration', '')}: {_data_loss(loss).describe()}"
        for step in plan.get("steps") or []
        for loss in step.get("data_loss") or []
        if loss.get("archived")
    ]


def _data_loss(saved: dict[str, Any]) -> DataLoss:
    return DataLoss(
        table=str(saved.get("table", "")),
        column=saved.get("column"),
        rows=saved.get("rows"),
        estimated=bool(saved.get("estimated")),
        archived=bool(saved.get("archived")),
        join_table=bool(saved.get("join_table")),
    )
