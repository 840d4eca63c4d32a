"""The admin's view of a django-tenants fleet: how many targets (schemas) stand at each saved
state. Only on a database that uses django-tenants; the single-database pages do not change."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.contrib import admin, messages
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _, ngettext

from .. import conf, fleet, fleet_runner
from ..exceptions import RollbackError
from ..models import MigrationState, RollbackLog
from ..presenters.text import describe_group_loss

FLEET_TEMPLATE = "admin/django_rollback/migrationstate/fleet_rollback.html"


def targets_at_commits(database: str) -> tuple[Counter[str], int]:
    """Per commit, how many schemas' latest saved state is that commit's; and how many
    schemas there are. One query over every schema's own table of states."""
    found = fleet.targets(database)
    table = MigrationState._meta.db_table
    connection = connections[database]
    quote = connection.ops.quote_name
    parts = [
        f"(SELECT commit FROM {quote(target.schema)}.{quote(table)} ORDER BY id DESC LIMIT 1)"
        for target in found
    ]
    with fleet.on_schema(found[0]) as connection, connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts))
        commits = Counter(str(commit) for (commit,) in cursor.fetchall() if commit)
    return commits, len(found)


def targets_column(request: HttpRequest, database: str) -> Any | None:
    """The "targets at it" column of the saved-states list, or None without django-tenants;
    computed once per request."""
    if not fleet.uses_tenants(database):
        return None
    cached = getattr(request, "_rollback_targets_column", None)
    if cached is not None:
        return cached
    try:
        commits, total = targets_at_commits(database)
    except RollbackError:
        return None

    @admin.display(description=_("targets at it"))
    def targets_at_it(obj: MigrationState) -> str:
        count = commits.get(obj.commit, 0)
        return format_html(
            '<span class="rollback-fleet-count" title="{}">{}</span>',
            ngettext(
                "%(count)d of %(total)d schemas (public and tenants) has this as its latest "
                "saved state",
                "%(count)d of %(total)d schemas (public and tenants) have this as their latest "
                "saved state",
                count,
            )
            % {"count": count, "total": total},
            _("%(count)d of %(total)d") % {"count": count, "total": total},
        )

    request._rollback_targets_column = targets_at_it  # type: ignore[attr-defined]
    return targets_at_it


def fleet_rollback_view(
    model_admin: Any, request: HttpRequest, state: MigrationState, database: str
) -> HttpResponse:
    """GET: the fleet's preview (the plan once per group of schemas at the same applied set,
    with how many targets it applies to, and every exception). POST: queue it for the runner
    when the preview's fingerprint still holds."""
    skip_unsaved = bool(request.POST.get("skip_unsaved") or request.GET.get("skip_unsaved"))
    plan: fleet.FleetPlan | None = None
    error = None
    try:
        plan = fleet.plan_fleet(
            database=database,
            commit=state.commit,
            repo_path=conf.repo_path(),
            skip_unsaved=skip_unsaved,
            count_rows=request.method != "POST",
        )
    except RollbackError as exc:
        error = str(exc)
    if request.method == "POST":
        return _confirm(model_admin, request, state, plan, error)
    return _preview(model_admin, request, state, plan, error, skip_unsaved)


def _confirm(
    model_admin: Any,
    request: HttpRequest,
    state: MigrationState,
    plan: fleet.FleetPlan | None,
    error: str | None,
) -> HttpResponse:
    """Queue the fleet rollback for the runner when the preview's fingerprint still holds."""
    here = model_admin._rollback_url(request, state.pk)
    if plan is None:
        model_admin.message_user(request, error or "", messages.ERROR)
        return HttpResponseRedirect(here)
    if request.POST.get("fingerprint") != fleet_runner.fingerprint(plan):
        model_admin.message_user(
            request,
            _(
                "The schemas or their saved states changed since this preview was shown; "
                "nothing was done. Read the new preview before confirming."
            ),
            messages.ERROR,
        )
        return HttpResponseRedirect(here)
    try:
        log = fleet_runner.start(plan, user=request.user.get_username())
    except RollbackError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(here)
    model_admin.message_user(
        request,
        ngettext(
            "Fleet rollback started: %(count)d target to roll back. This page follows it.",
            "Fleet rollback started: %(count)d targets to roll back. This page follows it.",
            len(plan.planned),
        )
        % {"count": len(plan.planned)},
        messages.INFO,
    )
    return HttpResponseRedirect(model_admin._log_url(request, log))


def _preview(
    model_admin: Any,
    request: HttpRequest,
    state: MigrationState,
    plan: fleet.FleetPlan | None,
    error: str | None,
    skip_unsaved: bool,
) -> HttpResponse:
    """The plan once per group of schemas at the same applied set, and every exception."""
    groups = []
    if plan is not None:
        for group in plan.groups():
            groups.append(
                {
                    "group": group,
                    "count": len(group.schemas),
                    "losses": [describe_group_loss(total) for total in group.losses],
                }
            )
    exceptions = [r for r in plan.runs if r.status != "planned" or r.odd] if plan else []
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Roll back every schema to %(state)s") % {"state": state},
        "subtitle": None,
        "opts": model_admin.opts,
        "original": state,
        "state": state,
        "fleet": plan,
        "groups": groups,
        "exceptions": exceptions,
        "planned_count": len(plan.planned) if plan else 0,
        "total": len(plan.runs) if plan else 0,
        "refusal": plan.refusal if plan else None,
        "unsaved": bool(plan and [r for r in plan.runs if r.status == "unsaved"]),
        "skip_unsaved": skip_unsaved,
        "fingerprint": fleet_runner.fingerprint(plan) if plan else "",
        "error": error,
        "changelist_url": model_admin._changelist_url(request),
        "app_url": reverse("admin:app_list", args=[model_admin.opts.app_label]),
        "state_url": reverse("admin:django_rollback_migrationstate_change", args=[state.pk]),
        "media": model_admin.media,
    }
    return TemplateResponse(request, FLEET_TEMPLATE, context)


def fleet_outcomes(log: RollbackLog) -> str:
    """The log page's table of per-target outcomes of a fleet entry."""
    document = log.plan["fleet"]
    rows = format_html_join(
        "",
        '<tr class="rollback-target rollback-target-{}"><td><code>{}</code></td><td>{}</td>'
        "<td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                entry["status"],
                entry["schema"],
                entry["kind"],
                entry["status"],
                len(entry.get("steps") or []),
                entry.get("message") or "",
            )
            for entry in document.get("targets", [])
        ),
    )
    summary = document.get("summary") or {}
    line = ", ".join(f"{key} {value}" for key, value in summary.items() if value) or _("running")
    return format_html(
        '<p class="rollback-fleet-summary">{}</p><table class="rollback-fleet-targets">'
        "<thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        line,
        _("schema"),
        _("kind"),
        _("outcome"),
        _("steps"),
        _("message"),
        rows,
    )
