"""The saved states: the list with its status panel and action, and the detail page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _, gettext_lazy, ngettext

from .. import conf, services
from ..exceptions import RollbackError
from ..models import MigrationState
from ..presenters.text import migrations_in_apps
from ..templatetags.rollback_admin import DJANGO_6_MARKUP
from .approvals import pending_requests
from .common import (
    DatabaseFilter,
    ReadOnlyAdmin,
    commit_code,
    group_by_app,
    selected_database,
    tag_badges,
    with_database,
)
from .compare import CompareViewsMixin
from .fleet import targets_column
from .rollback_views import RollbackViewsMixin


@admin.register(MigrationState)
class MigrationStateAdmin(CompareViewsMixin, RollbackViewsMixin, ReadOnlyAdmin):
    change_list_template = "admin/django_rollback/migrationstate/change_list.html"
    change_form_template = "admin/django_rollback/migrationstate/change_form.html"
    actions = ["rollback_to_state", "compare_states"]
    list_filter = [DatabaseFilter]
    search_fields = ["^commit", "tags"]
    search_help_text = gettext_lazy("A commit prefix or a tag.")
    show_full_result_count = False  # one COUNT(*) less on big tables
    list_per_page = 50
    fields = readonly_fields = (
        "commit_full",
        "tags_badges",
        "saved_at",
        "app_count",
        "migration_count",
    )

    class Media:
        css = {"all": ["django_rollback/admin.css"]}

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
        cached: services.DatabaseOverview | None = request._rollback_overview  # type: ignore[attr-defined]
        return cached

    def rollback_offered(self, request: HttpRequest) -> bool:
        """A rollback starts from the deployed commit's saved state: without one (HEAD not
        saved, or left by a rollback until the older release is deployed) the preview would
        refuse every target, so the list does not offer any."""
        overview = self.get_overview(request)
        return overview is not None and overview.current is not None

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 passes where the actions are shown (list or form); 5.2 knows no such thing.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)  # type: ignore[call-arg]
        if not self.rollback_offered(request):
            actions.pop("rollback_to_state", None)
        return actions

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        overview = self.get_overview(request)
        status = _status_column(overview)
        undo = _undo_column(overview)
        columns: list[Any] = [
            "commit_link",
            "tags_badges",
            "saved_at",
            "app_count",
            "migration_count",
            status,
        ]
        fleet_column = targets_column(request, selected_database(request))
        if fleet_column is not None:  # django-tenants: how many schemas stand at each state
            columns.append(fleet_column)
        return [*columns, undo] if self.rollback_offered(request) else columns

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
        return obj.app_count

    @admin.display(description=gettext_lazy("migrations"))
    def migration_count(self, obj: MigrationState) -> int:
        return len(obj.migrations)

    def get_list_display_links(self, request: HttpRequest, list_display: Any) -> list[Any]:
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

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        overview = self.get_overview(request)
        context = {
            "overview": overview,
            "drift_added": group_by_app(overview.drift[0]) if overview else [],
            "drift_removed": group_by_app(overview.drift[1]) if overview else [],
            "can_rollback": self.has_rollback_permission(request),
            "rollback_offered": self.rollback_offered(request),
            "save_url": with_database(
                reverse("admin:django_rollback_migrationstate_save"), request
            ),
            "database": selected_database(request),
            # 6.x puts the object tools in the title row: the banner goes below it, not into it
            "overview_below_title": DJANGO_6_MARKUP,
            "pending_requests": pending_requests(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    # --- the detail page ---------------------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        state = self.get_object(request, object_id)
        overview = self.get_overview(request) if state is not None else None
        context: dict[str, Any] = {
            "can_rollback": self.has_rollback_permission(request),
            "rollback_offered": state is not None and self.rollback_offered(request),
        }
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


def _status_column(overview: services.DatabaseOverview | None) -> Callable[[MigrationState], str]:
    @admin.display(description=_("status"))
    def status(obj: MigrationState) -> str:
        marks: list[tuple[str, tuple[str, ...]]] = []
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

    return status


def _undo_column(overview: services.DatabaseOverview | None) -> Callable[[MigrationState], str]:
    current = overview.current if overview else None
    # Irreversible migrations applied now, as the current state's save recorded them
    # (MigrationState.readiness): no plan per row, no query.
    recorded = ((current.readiness or {}).get("irreversible_applied", [])) if current else []

    def irreversible_in_the_way(obj: MigrationState) -> list[str]:
        if current is None or obj.pk >= current.pk:
            return []
        have = {f"{app}.{name}" for app, name in obj.migrations}
        return [entry["migration"] for entry in recorded if entry["migration"] not in have]

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
        text = "−" + migrations_in_apps(summary.migrations, summary.apps)
        blocking = irreversible_in_the_way(obj)
        if not blocking:
            return text
        return format_html(
            '{} <span class="rollback-badge rollback-drift rollback-irreversible" '
            'title="{}">{}</span>',
            text,
            _("Recorded when the current state was saved (rollback readiness)."),
            _("cannot: irreversible %(migrations)s") % {"migrations": ", ".join(blocking)},
        )

    return undo
