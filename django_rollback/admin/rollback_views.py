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

from .. import approvals, background, conf, fleet, services
from ..exceptions import RollbackError
from ..models import MigrationState, RollbackLog
from ..planning import RollbackPlan
from ..presenters.outcomes import not_latest_warning, save_outcome
from ..presenters.preview import size_sentence
from .approvals import pending_requests, request_rollback
from .common import (
    ROLLBACK_PERMISSION,
    StateModelAdmin,
    selected_database,
    with_database,
)
from .fleet import fleet_rollback_view


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
        level = messages.SUCCESS if result.created or result.updated else messages.INFO
        self.message_user(request, save_outcome(result), level)
        if not result.is_latest:
            self.message_user(request, not_latest_warning(result), messages.WARNING)
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
        if fleet.uses_tenants(database):  # every schema: the fleet's preview and runner
            return fleet_rollback_view(self, request, state, database)
        # The SQL is shown by the preview and the dry run's page; the confirming POST only
        # compares fingerprints and runs the plan, so it does not compute SQL to throw away.
        shows_page = request.method != "POST" or "dry_run" in request.POST
        plan, error = None, None
        try:
            plan = services.plan_rollback(
                state_id=state.pk,
                repo_path=conf.repo_path(),
                database=database,
                with_sql=shows_page,
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
            # said once, in the page's dry-run box (with the link to its audit entry)
            return self._render_preview(request, state, plan, None, dry_run=log)
        if "rehearse" in request.POST:
            return self._rehearse(request, state, plan, user)
        if approvals.required():  # the confirm is a request for approval: nothing runs yet
            return request_rollback(self, request, state, plan)
        try:
            # The rollback runs in a process of its own (background.py): this request only
            # queues it, so no web server timeout can cut it short.
            log = background.start_rollback(plan, user=user, source=RollbackLog.Source.ADMIN)
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

    def _rehearse(
        self, request: HttpRequest, state: MigrationState, plan: RollbackPlan, user: str
    ) -> HttpResponse:
        """The whole plan for real in one transaction, rolled back: its step times become
        the expected durations of the preview."""
        if plan.blockers:
            self.message_user(
                request, _("This rollback would be refused; see why below."), messages.ERROR
            )
            return self._render_preview(request, state, plan, None)
        try:
            result = services.rehearse(plan, user=user, source=RollbackLog.Source.ADMIN)
        except RollbackError as exc:  # refused (backend, lock, stale) or a step failed
            self.message_user(request, str(exc), messages.ERROR)
            return self._render_preview(request, state, plan, None)
        self.message_user(
            request,
            format_html(
                '{} <a href="{}">{}</a>',
                ngettext(
                    "Rehearsal: %(count)d migration ran in %(seconds).2f s and was rolled "
                    "back; nothing was changed.",
                    "Rehearsal: %(count)d migrations ran in %(seconds).2f s and were rolled "
                    "back; nothing was changed.",
                    len(plan.steps),
                )
                % {"count": len(plan.steps), "seconds": result.seconds},
                self._log_url(request, result.log),
                _("Audit entry %(id)s") % {"id": result.log.pk},
            ),
            messages.SUCCESS,
        )
        return self._render_preview(request, state, plan, None, rehearsal=result.log)

    def _last_rehearsal(self, plan: RollbackPlan) -> RollbackLog | None:
        """The latest successful rehearsal of exactly this plan, if any."""
        found = (
            RollbackLog.objects.using(plan.database)
            .rehearsals_of(plan.current.commit, plan.target.commit)
            .first()
        )
        if found is not None and (found.plan or {}).get("fingerprint") == plan.fingerprint:
            return found
        return None

    def _render_preview(
        self,
        request: HttpRequest,
        state: MigrationState,
        plan: RollbackPlan | None,
        error: str | None,
        dry_run: RollbackLog | None = None,
        rehearsal: RollbackLog | None = None,
    ) -> HttpResponse:
        data_loss_lines = (
            {f"{step.label}: {loss.describe()}" for step, loss in plan.data_loss} if plan else set()
        )
        # Steps that drop what the archive does not keep: only these look like losses.
        lossy_steps = [s for s, loss in plan.data_loss if not loss.archived] if plan else []
        if plan is not None and rehearsal is None and plan.steps and not plan.is_noop:
            rehearsal = self._last_rehearsal(plan)
        step_seconds: dict[str, float] = (
            (rehearsal.plan or {}).get("step_seconds", {}) if (rehearsal) else {}
        )
        context = {
            **self.admin_site.each_context(request),
            "rehearsal": rehearsal,
            # (step, expected seconds from the rehearsal or None), in the order they run
            "timed_steps": [(step, step_seconds.get(step.label)) for step in plan.steps]
            if plan
            else [],
            "can_rehearse": bool(plan and plan.all_or_nothing),
            "title": _("Roll back to %(state)s") % {"state": state},
            "subtitle": None,
            "opts": self.opts,
            "original": state,
            "state": state,
            "plan": plan,
            "size_sentence": size_sentence(plan) if plan else "",
            "error": error,
            "dry_run": dry_run,
            "database": selected_database(request),
            "show_database": len(settings.DATABASES) > 1,
            "data_lost": bool(lossy_steps),
            "lossy_steps": lossy_steps,
            "other_warnings": [w for w in plan.warnings if w not in data_loss_lines]
            if plan
            else [],
            "changelist_url": self._changelist_url(request),
            "app_url": reverse("admin:app_list", args=[self.opts.app_label]),
            "state_url": with_database(
                reverse("admin:django_rollback_migrationstate_change", args=[state.pk]), request
            ),
            "dry_run_url": self._log_url(request, dry_run) if dry_run else None,
            "approvals_needed": approvals.required(),
            "pending_requests": pending_requests(request),
            "media": self.media,
        }
        return TemplateResponse(request, self.rollback_template, context)
