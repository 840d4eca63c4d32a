"""Approvals by a second person in the panel: the request made from the preview, the page
where approvers decide (approve and run, approve, reject) and the requester cancels, the
"Awaiting approval" filter and the notice on the states list.

Every rule lives in django_rollback.approvals; this module checks who may press which button
(again on POST) and turns results into messages and pages. GET only shows.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _, gettext_lazy, ngettext

from .. import approvals
from ..exceptions import RollbackError
from ..models import MigrationState, RollbackLog
from ..planning import RollbackPlan
from ..templatetags.rollback_admin import admin_date
from .common import AnyModelAdmin, selected_database, with_database

Status = RollbackLog.Status

# The buttons of the decision page, by the name they post.
APPROVER_ACTIONS = ("approve_and_run", "approve", "reject")


def approval_url(request: HttpRequest, log: RollbackLog) -> str:
    url = reverse("admin:django_rollback_rollbacklog_approval", args=[log.pk])
    return with_database(url, request)


def entry_url(request: HttpRequest, log: RollbackLog) -> str:
    return with_database(
        reverse("admin:django_rollback_rollbacklog_change", args=[log.pk]), request
    )


def pending_requests(request: HttpRequest) -> list[dict[str, Any]]:
    """Open requests on the selected database, for the states list and the preview."""
    if not approvals.required():
        return []  # approvals off: no query on every page
    return [
        {"log": log, "url": approval_url(request, log)}
        for log in approvals.open_requests(selected_database(request))
    ]


def request_rollback(
    model_admin: AnyModelAdmin, request: HttpRequest, state: MigrationState, plan: RollbackPlan
) -> HttpResponse:
    """The preview's confirm while approvals are on: record a request, run nothing."""
    preview = with_database(
        reverse("admin:django_rollback_migrationstate_rollback", args=[state.pk]), request
    )
    try:
        log = approvals.request(
            plan, user=request.user.get_username(), reason=request.POST.get("reason", "")
        )
    except RollbackError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(preview)
    model_admin.message_user(
        request,
        ngettext(
            "Rollback requested (request %(id)s): it runs once %(count)d other user with the "
            "approve_rollback permission approves it. Nothing was changed yet.",
            "Rollback requested (request %(id)s): it runs once %(count)d other users with the "
            "approve_rollback permission approve it. Nothing was changed yet.",
            log.approvals_needed,
        )
        % {"id": log.pk, "count": log.approvals_needed},
        messages.SUCCESS,
    )
    return HttpResponseRedirect(approval_url(request, log))


class AwaitingApprovalFilter(admin.SimpleListFilter):
    title = gettext_lazy("approval")
    parameter_name = "approval"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("awaiting", gettext_lazy("Awaiting approval"))]

    def has_output(self) -> bool:
        return bool(approvals.required())  # off: the status filter still finds old requests

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "awaiting":
            return queryset.filter(status=Status.AWAITING_APPROVAL)
        return queryset


class ApprovalViewsMixin(AnyModelAdmin):
    """The decision page of RollbackLogAdmin, and the approval section of an entry."""

    approval_template = "admin/django_rollback/rollbacklog/approval.html"
    approval_section = gettext_lazy("Approval")

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(approvals.APPROVE_PERMISSION)

    def get_urls(self) -> list[URLPattern]:
        app, model = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/approval/",
                self.admin_site.admin_view(self.approval_view),
                name=f"{app}_{model}_approval",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        approvals.expire_overdue(selected_database(request))  # the list shows them as expired
        return super().changelist_view(request, extra_context)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        """The approval section only on entries that have an approval trail."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and obj.approval_trail:
            return fieldsets
        return [(title, options) for title, options in fieldsets if title != self.approval_section]

    @admin.display(description=gettext_lazy("approval"))
    def approval_display(self, obj: RollbackLog) -> str:
        lines = format_html_join(
            "", "<li>{}</li>", ((describe_event(event),) for event in obj.approval_trail or [])
        )
        link = ""
        if obj.is_request:
            url = reverse("admin:django_rollback_rollbacklog_approval", args=[obj.pk])
            label = (
                _("Review the request")
                if obj.status in RollbackLog.OPEN_REQUESTS
                else _("The request and its decisions")
            )
            link = format_html(
                '<p><a class="button" id="rollback-approval-link" href="{}">{}</a></p>', url, label
            )
        return format_html('<ul class="rollback-approval-trail">{}</ul>{}', lines, link)

    def approval_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the request, its plan and trail, and the buttons this user may press.
        POST: one decision, the permission checked again."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        log = self.get_object(request, object_id)
        if log is None or not log.is_request:
            self.message_user(
                request,
                _("There is no rollback request with id %(id)s.") % {"id": object_id},
                messages.ERROR,
            )
            return HttpResponseRedirect(
                with_database(reverse("admin:django_rollback_rollbacklog_changelist"), request)
            )
        database = selected_database(request)
        if approvals.expire_overdue(database):
            log.refresh_from_db(using=database)
        if request.method == "POST":
            return self._decide(request, log)
        user = request.user.get_username()
        awaiting = log.status == Status.AWAITING_APPROVAL
        context = {
            **self.admin_site.each_context(request),
            "title": _("Rollback request %(id)s") % {"id": log.pk},
            "subtitle": None,
            "opts": self.opts,
            "original": log,
            "log": log,
            "trail": [
                {**event, "at": admin_date(event.get("at")), "text": describe_event(event)}
                for event in log.approval_trail or []
            ],
            "plan_html": self.plan_display(log),  # type: ignore[attr-defined]
            "is_requester": user == log.user,
            "can_decide": awaiting and user != log.user and self.has_approve_permission(request),
            "already_approved": user in log.approvers,
            "can_cancel": user == log.user and log.status in RollbackLog.OPEN_REQUESTS,
            "run_command": _run_command(log, database),
            "entry_url": entry_url(request, log),
            "media": self.media,
        }
        return TemplateResponse(request, self.approval_template, context)

    def _decide(self, request: HttpRequest, log: RollbackLog) -> HttpResponse:
        action = next(
            (name for name in (*APPROVER_ACTIONS, "cancel") if name in request.POST), None
        )
        if action in APPROVER_ACTIONS and not self.has_approve_permission(request):
            raise PermissionDenied
        if action is None:
            return HttpResponseRedirect(approval_url(request, log))
        user, comment = request.user.get_username(), request.POST.get("comment", "")
        database = selected_database(request)
        try:
            if action == "cancel":
                approvals.cancel(log.pk, user=user, database=database, comment=comment)
                text = _("Rollback request %(id)s cancelled; it never runs.")
            elif action == "reject":
                approvals.reject(log.pk, user=user, database=database, comment=comment)
                text = _("Rollback request %(id)s rejected; it never runs.")
            else:
                decision = approvals.approve(
                    log.pk,
                    user=user,
                    database=database,
                    comment=comment,
                    run=action == "approve_and_run",
                )
                if decision.started:
                    self.message_user(
                        request,
                        _("Approved; the rollback started. This page follows it."),
                        messages.INFO,
                    )
                    return HttpResponseRedirect(entry_url(request, log))
                text = self._approved_text(decision, database)
        except RollbackError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(approval_url(request, log))
        self.message_user(request, text % {"id": log.pk}, messages.SUCCESS)
        return HttpResponseRedirect(approval_url(request, log))

    @staticmethod
    def _approved_text(decision: approvals.Decision, database: str) -> str:
        if not decision.complete:
            return _(
                "Approved (%(done)d of %(needed)d approvals): rollback request %%(id)s waits "
                "for another approver."
            ) % {"done": decision.approvals, "needed": decision.needed}
        return _(
            "Rollback request %%(id)s approved. An operator runs it from a terminal with: "
            "%(command)s"
        ) % {"command": _run_command(decision.log, database)}


def _run_command(log: RollbackLog, database: str) -> str:
    extra = f" --database {database}" if database != "default" else ""
    return f"python manage.py rollback_migrations --approved {log.pk}{extra}"


def describe_event(event: dict[str, Any]) -> str:
    """One line of the trail: when, who, what, and the comment."""
    what = {
        "requested": _("requested the rollback"),
        "approved": _("approved"),
        "rejected": _("rejected"),
        "cancelled": _("cancelled the request"),
        "expired": _("the request expired"),
        "stale": _("the request became stale"),
        "run": _("ran it"),
        "bypassed": _("ran it from the command line"),
    }.get(str(event.get("event")), str(event.get("event")))
    who = str(event.get("user") or "")
    line = f"{admin_date(event.get('at'))}: {who + ' ' if who else ''}{what}"
    comment = str(event.get("comment") or "")
    return f"{line}: {comment}" if comment else line
