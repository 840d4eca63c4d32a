"""The flows that change something: save the current state, preview and confirm a rollback.

GET only previews; every POST checks the permission again and re-plans before it acts.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _, ngettext

from .. import conf, services
from ..exceptions import RollbackError
from ..models import MigrationState, RollbackLog
from ..planning import RollbackPlan
from .common import (
    ROLLBACK_PERMISSION,
    StateModelAdmin,
    selected_database,
    with_database,
)


class RollbackViewsMixin(StateModelAdmin):
    """Pages of MigrationStateAdmin beyond the list and the detail page."""

    rollback_template = "admin/django_rollback/migrationstate/rollback.html"

    def has_rollback_permission(self, request: HttpRequest) -> bool:
        """The permission behind the action, the preview, the confirmation and saving."""
        return request.user.has_perm(ROLLBACK_PERMISSION)

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
            log = services.record_dry_run(plan, user=user, source=RollbackLog.Source.ADMIN)
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
            # The rollback runs in a process of its own (background.py): this request only
            # queues it, so no web server timeout can cut it short.
            log = services.start_rollback(plan, user=user, source=RollbackLog.Source.ADMIN)
        except RollbackError as exc:  # refused: another rollback runs, or it could not start
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._rollback_url(request, state.pk))
        self.message_user(
            request,
            ngettext(
                "Rollback to %(state)s started: %(count)d migration to unapply. This page "
                "follows it; closing it does not stop the rollback.",
                "Rollback to %(state)s started: %(count)d migrations to unapply. This page "
                "follows it; closing it does not stop the rollback.",
                len(plan.steps),
            )
            % {"state": services.describe_state(plan.target), "count": len(plan.steps)},
            messages.INFO,
        )
        return HttpResponseRedirect(self._log_url(request, log))

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
