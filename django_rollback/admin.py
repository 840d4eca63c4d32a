"""The operations panel: saved states, the rollback preview, and the audit log.

Thin on purpose: every decision is made by services; this module turns requests into
service calls and results into pages and messages. States are written only by
save_migrations_state, the "Save current state" button and rollbacks, never by hand.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from . import conf, services
from .exceptions import RollbackError
from .models import MigrationKey, MigrationState, RollbackLog
from .planning import RollbackPlan

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
        commit[:10],
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


class ReadOnlyAdmin(admin.ModelAdmin):
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


@admin.register(MigrationState)
class MigrationStateAdmin(ReadOnlyAdmin):
    change_list_template = "admin/django_rollback/migrationstate/change_list.html"
    change_form_template = "admin/django_rollback/migrationstate/change_form.html"
    rollback_template = "admin/django_rollback/migrationstate/rollback.html"
    actions = ["rollback_to_state"]
    list_filter = [DatabaseFilter]
    search_fields = ["^commit", "tags"]
    search_help_text = gettext_lazy("A commit prefix or a tag.")
    show_full_result_count = False  # one COUNT(*) less on big tables
    list_per_page = 50
    fields = ["commit_full", "tags_badges", "saved_at", "app_count", "migration_count"]
    readonly_fields = fields

    class Media:
        css = {"all": ["django_rollback/admin.css"]}

    # --- permissions -------------------------------------------------------------------

    def has_rollback_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ROLLBACK_PERMISSION)

    # --- the list ----------------------------------------------------------------------

    def get_overview(self, request: HttpRequest) -> services.DatabaseOverview | None:
        """Computed once per request; None when the database cannot be read."""
        if not hasattr(request, "_rollback_overview"):
            try:
                found: services.DatabaseOverview | None = services.overview(
                    repo_path=conf.repo_path(), database=selected_database(request)
                )
            except RollbackError as exc:
                messages.error(request, str(exc))
                found = None
            request._rollback_overview = found  # type: ignore[attr-defined]
        return request._rollback_overview  # type: ignore[attr-defined]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        overview = self.get_overview(request)

        @admin.display(description=_("status"))
        def status(obj: MigrationState) -> str:
            marks = []
            if overview and overview.current and overview.current.pk == obj.pk:
                marks.append(
                    (
                        '<span class="rollback-badge rollback-current" title="{}">{}</span>',
                        (_("The saved state of the deployed commit (HEAD)"), _("current")),
                    )
                )
            if overview and overview.latest and overview.latest.pk == obj.pk:
                if overview.drifted:
                    marks.append(
                        (
                            '<span class="rollback-badge rollback-drift" title="{}">{}</span>',
                            (_("The applied migrations no longer match this state"), _("drift")),
                        )
                    )
                else:
                    marks.append(('<span class="rollback-badge">{}</span>', (_("latest"),)))
            return format_html_join(" ", "{}", ((format_html(t, *a),) for t, a in marks))

        @admin.display(description=_("rolling back to it"))
        def undo(obj: MigrationState) -> str:
            if overview is None:
                return "—"
            summary = overview.undo_summary(obj)
            if summary.missing:
                return format_html(
                    '<span class="rollback-warning">{}</span>',
                    ngettext(
                        "cannot: %(count)d migration of it is not applied",
                        "cannot: %(count)d migrations of it are not applied",
                        summary.missing,
                    )
                    % {"count": summary.missing},
                )
            if not summary.migrations:
                return format_html('<span class="rollback-quiet">{}</span>', _("nothing to undo"))
            return (
                ngettext("−%(count)d migration", "−%(count)d migrations", summary.migrations)
                % {"count": summary.migrations}
                + " "
                + ngettext("in %(apps)d app", "in %(apps)d apps", summary.apps)
                % {"apps": summary.apps}
            )

        return [
            "commit_link",
            "tags_badges",
            "saved_at",
            "app_count",
            "migration_count",
            status,
            undo,
        ]

    @admin.display(description=gettext_lazy("commit"), ordering="commit")
    def commit_link(self, obj: MigrationState) -> str:
        return commit_code(obj.commit)

    @admin.display(description=gettext_lazy("commit"))
    def commit_full(self, obj: MigrationState) -> str:
        return format_html('<code class="rollback-commit">{}</code>', obj.commit)

    @admin.display(description=gettext_lazy("tags"))
    def tags_badges(self, obj: MigrationState) -> str:
        return tag_badges(list(obj.tags))

    @admin.display(description=gettext_lazy("apps"))
    def app_count(self, obj: MigrationState) -> int:
        return len({app for app, _name in obj.migrations})

    @admin.display(description=gettext_lazy("migrations"))
    def migration_count(self, obj: MigrationState) -> int:
        return len(obj.migrations)

    def get_list_display_links(self, request: HttpRequest, list_display: Any) -> list[str]:
        return ["commit_link"]

    @admin.action(permissions=["rollback"], description=gettext_lazy("Rollback to this state"))
    def rollback_to_state(
        self, request: HttpRequest, queryset: QuerySet[MigrationState]
    ) -> HttpResponse | None:
        chosen = list(queryset.values_list("pk", flat=True)[:2])
        if len(chosen) != 1:
            self.message_user(
                request, _("Select exactly one state to roll back to."), messages.ERROR
            )
            return None
        return HttpResponseRedirect(self._rollback_url(request, chosen[0]))

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        overview = self.get_overview(request)
        context = {
            "overview": overview,
            "drift_added": group_by_app(overview.drift[0]) if overview else [],
            "drift_removed": group_by_app(overview.drift[1]) if overview else [],
            "can_rollback": self.has_rollback_permission(request),
            "save_url": reverse("admin:django_rollback_migrationstate_save"),
            "database": selected_database(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    # --- the detail page ---------------------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> Any:
        context: dict[str, Any] = {"can_rollback": self.has_rollback_permission(request)}
        state = self.get_object(request, object_id)
        overview = self.get_overview(request) if state is not None else None
        if state is not None:
            context["applied_by_app"] = [
                (app, names) for app, names in group_by_app(state.migration_set)
            ]
            context["rollback_url"] = self._rollback_url(request, state.pk)
        if state is not None and overview is not None:
            context["undo_by_app"] = group_by_app(overview.applied - state.migration_set)
            context["missing_by_app"] = group_by_app(state.migration_set - overview.applied)
            context["is_current"] = overview.current is not None and overview.current.pk == state.pk
        context.update(extra_context or {})
        return super().change_view(request, object_id, form_url, context)

    # --- extra pages -------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        app, model = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name=f"{app}_{model}_rollback",
            ),
            path(
                "save/",
                self.admin_site.admin_view(self.save_view),
                name=f"{app}_{model}_save",
            ),
            *super().get_urls(),
        ]

    def _rollback_url(self, request: HttpRequest, pk: Any) -> str:
        url = reverse("admin:django_rollback_migrationstate_rollback", args=[pk])
        return with_database(url, request)

    def _changelist_url(self, request: HttpRequest) -> str:
        return with_database(reverse("admin:django_rollback_migrationstate_changelist"), request)

    def _log_url(self, request: HttpRequest, log: RollbackLog) -> str:
        url = reverse("admin:django_rollback_rollbacklog_change", args=[log.pk])
        return with_database(url, request)

    def save_view(self, request: HttpRequest) -> HttpResponse:
        """POST only: save what is applied now as the state of the deployed commit."""
        if request.method != "POST":
            return HttpResponseRedirect(self._changelist_url(request))
        if not self.has_rollback_permission(request):
            raise PermissionDenied
        try:
            # wait=0: a web request must not hang behind a running rollback; say so instead.
            result = services.save_state(
                repo_path=conf.repo_path(), database=selected_database(request), wait=0
            )
        except RollbackError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._changelist_url(request))
        described = services.describe_state(result.state)
        if result.created:
            text, level = _("State saved for %(state)s.") % {"state": described}, messages.SUCCESS
        elif result.updated:
            text, level = _("State updated for %(state)s.") % {"state": described}, messages.SUCCESS
        else:
            text, level = (
                _("State for %(state)s was already saved.") % {"state": described},
                (messages.INFO),
            )
        self.message_user(request, text, level)
        if not result.is_latest:
            self.message_user(
                request,
                _("This commit's state is not the latest one: a newer state %(latest)s exists.")
                % {"latest": services.describe_state(result.latest)},
                messages.WARNING,
            )
        return HttpResponseRedirect(self._changelist_url(request))

    def rollback_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the preview, which changes nothing. POST: a dry run or the rollback itself."""
        if not self.has_view_permission(request) or not self.has_rollback_permission(request):
            raise PermissionDenied
        state = self.get_object(request, object_id)
        if state is None:
            self.message_user(
                request,
                _("There is no saved state with id %(id)s (a rollback may have removed it).")
                % {"id": object_id},
                messages.ERROR,
            )
            return HttpResponseRedirect(self._changelist_url(request))
        database = selected_database(request)
        plan, error = None, None
        try:
            plan = services.plan_rollback(
                state_id=state.pk, repo_path=conf.repo_path(), database=database, with_sql=True
            )
        except RollbackError as exc:
            error = str(exc)
        if request.method == "POST":
            if error is not None or plan is None:
                self.message_user(request, error or "", messages.ERROR)
                return HttpResponseRedirect(self._rollback_url(request, state.pk))
            return self._rollback_post(request, state, plan)
        return self._render_preview(request, state, plan, error)

    def _rollback_post(
        self, request: HttpRequest, state: MigrationState, plan: RollbackPlan
    ) -> HttpResponse:
        user = request.user.get_username()
        if request.POST.get("fingerprint") != plan.fingerprint:
            self.message_user(
                request,
                _(
                    "The database or the saved states changed since this preview was shown; "
                    "nothing was done. Read the new preview before confirming."
                ),
                messages.ERROR,
            )
            return HttpResponseRedirect(self._rollback_url(request, state.pk))
        if "dry_run" in request.POST:
            if plan.blockers:
                self.message_user(
                    request, _("This rollback would be refused; see why below."), messages.ERROR
                )
                return self._render_preview(request, state, plan, None)
            log = services.record_dry_run(plan, user=user, source="admin")
            self.message_user(
                request,
                format_html(
                    '{} <a href="{}">{}</a>',
                    _("Dry run: nothing was changed; below is what would run."),
                    self._log_url(request, log),
                    _("Audit entry %(id)s") % {"id": log.pk},
                ),
                messages.INFO,
            )
            return self._render_preview(request, state, plan, None, dry_run=log)
        try:
            result = services.execute(plan, user=user, source="admin")
        except RollbackError as exc:  # refused (lock held, stale) or failed and undone
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._rollback_url(request, state.pk))
        log_url = self._log_url(request, result.log)
        self.message_user(
            request,
            format_html(
                '{} <a href="{}">{}</a>',
                ngettext(
                    "Rolled back to %(state)s: %(count)d migration unapplied in %(seconds).2f s.",
                    "Rolled back to %(state)s: %(count)d migrations unapplied in %(seconds).2f s.",
                    len(plan.steps),
                )
                % {
                    "state": services.describe_state(plan.target),
                    "count": len(plan.steps),
                    "seconds": result.seconds,
                },
                log_url,
                _("Audit entry %(id)s") % {"id": result.log.pk},
            ),
            messages.SUCCESS,
        )
        if result.audit_error:
            self.message_user(request, result.audit_error, messages.WARNING)
        return HttpResponseRedirect(self._changelist_url(request))

    def _render_preview(
        self,
        request: HttpRequest,
        state: MigrationState,
        plan: RollbackPlan | None,
        error: str | None,
        dry_run: RollbackLog | None = None,
    ) -> HttpResponse:
        data_loss_lines = (
            {f"{step.label}: {loss.describe()}" for step, loss in plan.data_loss} if plan else set()
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Roll back to %(state)s") % {"state": state},
            "subtitle": None,
            "opts": self.opts,
            "original": state,
            "state": state,
            "plan": plan,
            "error": error,
            "dry_run": dry_run,
            "database": selected_database(request),
            "show_database": len(settings.DATABASES) > 1,
            "other_warnings": [w for w in plan.warnings if w not in data_loss_lines]
            if plan
            else [],
            "changelist_url": self._changelist_url(request),
            "media": self.media,
        }
        return TemplateResponse(request, self.rollback_template, context)


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
        return [field for _title, options in self.fieldsets for field in options["fields"]]

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
