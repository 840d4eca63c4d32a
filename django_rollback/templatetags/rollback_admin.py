"""The panel's template helpers: `{% rollback_status %}` (the deployed commit, its saved state
and drift, for any admin page), the one markup of a commit and of tags (`|rollback_commit`,
`|rollback_tags`, also used by the admin's columns), dates saved as text shown in the admin's
format (`|rollback_date`), and breadcrumbs in the markup of the running Django version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import django
from django import template
from django.db import DEFAULT_DB_ALIAS
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from .. import conf, services
from ..conf import short_commit
from ..exceptions import RollbackError

register = template.Library()

# Django 6.0 changed the admin's markup: breadcrumbs are an <ol> (a <div> with › is no longer
# styled) and the object tools sit in a flex row beside the page title (5.2 floats them).
DJANGO_6_MARKUP = django.VERSION >= (6, 0)


@register.filter(name="rollback_commit")
def commit_code(commit: str) -> SafeString:
    """A short commit, the full hash on hover."""
    return format_html(
        '<code class="rollback-commit" title="{}" data-commit="{}">{}</code>',
        commit,
        commit,
        short_commit(commit),
    )


@register.filter(name="rollback_tags")
def tag_badges(tags: Any) -> SafeString:
    """Git tags as badges, or a quiet dash when there are none."""
    if not tags:
        return format_html('<span class="rollback-quiet">{}</span>', "—")
    return format_html_join(" ", '<span class="rollback-tag">{}</span>', ((t,) for t in tags))


@register.filter(name="rollback_date")
def admin_date(value: Any) -> str:
    """A datetime, or one kept as ISO text in JSON (pruned states), in the admin's format."""
    when = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(when, datetime):
        return str(value or "—")
    if timezone.is_aware(when):
        when = timezone.localtime(when)
    return date_format(when, "DATETIME_FORMAT")


@register.inclusion_tag("admin/django_rollback/includes/breadcrumbs.html")
def rollback_breadcrumbs(*crumbs: Any) -> dict[str, Any]:
    """`{% rollback_breadcrumbs label url label url … last_label %}`: Home is implied."""
    pairs = list(crumbs)
    links = [(pairs[i], pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)]
    return {"links": links, "current": pairs[-1], "as_list": DJANGO_6_MARKUP}


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
    changelist_url = reverse("admin:django_rollback_migrationstate_changelist")
    if database != DEFAULT_DB_ALIAS:  # the link keeps the panel on the database it is about
        changelist_url += "?" + urlencode({"database": database})
    return {"visible": True, "overview": overview, "changelist_url": changelist_url}
