"""Compare two saved states: the changelist action "Compare" (two states selected) leads to
a page of what each has that the other lacks, per app (compare.py computes it)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _, gettext_lazy

from ..compare import compare_states, state_label, summary
from ..exceptions import RollbackError
from ..models import MigrationState
from .common import StateModelAdmin, selected_database, with_database


class CompareViewsMixin(StateModelAdmin):
    """The "Compare" action and its page (GET only: it changes nothing)."""

    compare_template = "admin/django_rollback/migrationstate/compare.html"

    def get_urls(self) -> list[URLPattern]:
        app, model = self.opts.app_label, self.opts.model_name
        return [
            path(
                "compare/<int:first>/<int:second>/",
                self.admin_site.admin_view(self.compare_view),
                name=f"{app}_{model}_compare",
            ),
            *super().get_urls(),
        ]

    @admin.action(permissions=["view"], description=gettext_lazy("Compare"))
    def compare_states(
        self, request: HttpRequest, queryset: QuerySet[MigrationState]
    ) -> HttpResponse | None:
        # Older first: the page reads "what the newer one adds" on the right.
        chosen = sorted(queryset.values_list("pk", flat=True)[:3])
        if len(chosen) != 2:
            self.message_user(request, _("Select exactly two states to compare."), messages.ERROR)
            return None
        url = reverse("admin:django_rollback_migrationstate_compare", args=chosen)
        return HttpResponseRedirect(with_database(url, request))

    def compare_view(self, request: HttpRequest, first: int, second: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        states = {s.pk: s for s in self.get_queryset(request).filter(pk__in=[first, second])}
        changelist = with_database(
            reverse("admin:django_rollback_migrationstate_changelist"), request
        )
        if first not in states or second not in states:
            self.message_user(
                request,
                _("A state to compare no longer exists (a rollback may have removed it)."),
                messages.ERROR,
            )
            return HttpResponseRedirect(changelist)
        try:
            result = compare_states(states[first], states[second])
        except RollbackError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(changelist)
        labels = state_label(result.first), state_label(result.second)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": _("Compare %(first)s with %(second)s")
            % {"first": result.first, "second": result.second},
            "subtitle": None,
            "opts": self.opts,
            "result": result,
            "first_label": labels[0],
            "second_label": labels[1],
            # The sentences (each change's text, the summary) are the command's.
            "summary": summary(result),
            "database": selected_database(request),
            "show_database": len(settings.DATABASES) > 1,
            "changelist_url": changelist,
            "app_url": reverse("admin:app_list", args=[self.opts.app_label]),
            "media": self.media,
        }
        return TemplateResponse(request, self.compare_template, context)
