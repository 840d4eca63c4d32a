"""`{% rollback_status %}`: the deployed commit, its saved state and drift, for any admin page."""

from __future__ import annotations

from typing import Any

from django import template
from django.db import DEFAULT_DB_ALIAS
from django.urls import reverse

from .. import conf, services
from ..exceptions import RollbackError

register = template.Library()


@register.inclusion_tag("admin/django_rollback/includes/status_panel.html", takes_context=True)
def rollback_status(context: Any, database: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("django_rollback.view_migrationstate"):
        return {"visible": False}
    try:
        overview = services.overview(repo_path=conf.repo_path(), database=database)
    except RollbackError as exc:
        return {"visible": True, "error": str(exc)}
    return {
        "visible": True,
        "overview": overview,
        "changelist_url": reverse("admin:django_rollback_migrationstate_changelist"),
    }
