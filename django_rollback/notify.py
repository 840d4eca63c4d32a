"""Notifications (e-mail, webhooks) built on the signals of signals.py; docs/notifications.md.

    DJANGO_ROLLBACK["NOTIFY"] = {
        "EMAILS": ["ops@example.com"] or "ADMINS",
        "WEBHOOKS": ["https://hooks.slack.com/services/..."],
        "TIMEOUT": 5,
        "BASE_URL": "https://ops.example.com",
        "EVENTS": ["rollback_finished", ...],   # default: every event
    }

A notification never breaks what it reports: an e-mail or a webhook that fails, or a webhook
that does not answer within TIMEOUT seconds, is logged (logger "django_rollback.notify") and
written on the rollback's log entry (a "Notification failed: ..." line appended to its
output), and the rollback goes on.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.mail import mail_admins, send_mail
from django.db import DatabaseError
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode

from . import signals
from .conf import short_commit
from .models import MigrationState, RollbackLog, tags_text
from .notify_settings import NotifyConfig, config

logger = logging.getLogger(__name__)

# Failures of the "started" notifications wait on the entry object until the rollback ends:
# the entry's output is rewritten as the steps run, and would lose a line written earlier.
_PENDING_ATTRIBUTE = "_rollback_notify_failures"


@dataclass
class Event:
    """What one notification says; `document()` is the webhook's JSON."""

    event: str
    database: str
    text: str
    from_commit: str | None = None
    from_tags: list[str] = field(default_factory=list)
    to_commit: str | None = None
    to_tags: list[str] = field(default_factory=list)
    outcome: str | None = None
    user: str | None = None
    log_id: int | None = None
    url: str | None = None
    error: str = ""

    def document(self) -> dict[str, Any]:
        slack = f"{self.text} <{self.url}|log entry {self.log_id}>" if self.url else self.text
        return {
            "event": self.event,
            "database": self.database,
            "from": {"commit": self.from_commit, "tags": self.from_tags},
            "to": {"commit": self.to_commit, "tags": self.to_tags},
            "outcome": self.outcome,
            "user": self.user,
            "log_id": self.log_id,
            "url": self.url,
            "error": self.error or None,
            "text": slack,
        }

    @property
    def subject(self) -> str:
        return f"[django-rollback] {self.text}"[:200]

    @property
    def body(self) -> str:
        lines = [self.text]
        if self.error:
            lines.append(self.error)
        if self.url:
            lines.append(f"Log entry: {self.url}")
        return "\n\n".join(lines) + "\n"


def _commit(sha: str, tags: list[str]) -> str:
    return f"{short_commit(sha)} {tags_text(tags)}"


def log_url(log: RollbackLog, base_url: str) -> str | None:
    """BASE_URL + the admin page of the log entry; None without a base URL or an admin."""
    if not base_url or log.pk is None:
        return None
    try:
        path = reverse("admin:django_rollback_rollbacklog_change", args=[log.pk])
    except NoReverseMatch:
        return None
    database = log._state.db or log.database
    query = f"?{urlencode({'database': database})}" if database != "default" else ""
    return f"{base_url}{path}{query}"


def rollback_event(name: str, log: RollbackLog, base_url: str) -> Event:
    route = f"{_commit(log.from_commit, log.from_tags)} → {_commit(log.to_commit, log.to_tags)}"
    by = f" by {log.user}" if log.user else ""
    where = f"database '{log.database}'"
    outcome = None
    if name == "rollback_requested":
        text = f"Rollback requested{by} on {where}: {route}; it awaits approval."
    elif name == "rollback_started":
        text = f"Rollback started{by} on {where}: {route}."
    else:
        outcome = str(log.status)
        text = f"Rollback {outcome}{by} on {where}: {route}."
    return Event(
        event=name,
        database=log.database,
        text=text,
        from_commit=log.from_commit,
        from_tags=list(log.from_tags),
        to_commit=log.to_commit,
        to_tags=list(log.to_tags),
        outcome=outcome,
        user=log.user or None,
        log_id=log.pk,
        url=log_url(log, base_url),
        error=log.error if name == "rollback_finished" else "",
    )


def saved_event(state: MigrationState, previous: MigrationState | None, database: str) -> Event:
    text = f"State saved on database '{database}': {_commit(state.commit, state.tags)}"
    if previous is not None:
        text += f" (previous: {_commit(previous.commit, previous.tags)})"
    return Event(
        event="state_saved",
        database=database,
        text=text + ".",
        from_commit=previous.commit if previous else None,
        from_tags=list(previous.tags) if previous else [],
        to_commit=state.commit,
        to_tags=list(state.tags),
    )


def restored_event(log: RollbackLog, restored: int, database: str, base_url: str) -> Event:
    text = (
        f"Archive of rollback log entry {log.pk} restored on database '{database}': "
        f"{restored} rows/values put back ({_commit(log.from_commit, log.from_tags)})."
    )
    return Event(
        event="archive_restored",
        database=database,
        text=text,
        from_commit=log.from_commit,
        from_tags=list(log.from_tags),
        to_commit=log.to_commit,
        to_tags=list(log.to_tags),
        log_id=log.pk,
        url=log_url(log, base_url),
    )


def deliver(event: Event, settings: NotifyConfig) -> list[str]:
    """Send the e-mail and one POST per webhook; returns a line per failure, never raises."""
    failures: list[str] = []
    if settings.emails or settings.to_admins:
        try:
            if settings.to_admins:
                mail_admins(event.subject, event.body, fail_silently=False)
            else:
                send_mail(event.subject, event.body, None, list(settings.emails))
        except Exception as exc:  # SMTP errors come in many classes; none may stop us
            failures.append(f"e-mail: {_reason(exc)}")
    body = json.dumps(event.document()).encode()
    for url in settings.webhooks:
        reason = post(url, body, settings.timeout)
        if reason:
            failures.append(f"webhook {url}: {reason}")
    for line in failures:
        logger.warning("Notification of %s failed: %s", event.event, line)
    return failures


def post(url: str, body: bytes, timeout: float) -> str | None:
    """POST the JSON; the reason it failed, or None. Cut after `timeout` seconds."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "django-rollback"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return f"no answer within {timeout:g}s"
        return _reason(exc.reason)
    except Exception as exc:  # a notification must never break the rollback
        return _reason(exc)
    return None


def _reason(exc: BaseException | str) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def record_failures(log: RollbackLog, failures: list[str], *, now: bool = True) -> None:
    """Append the failures to the entry's output (in the row and on the object); with
    `now` false they wait on the object for the next call that writes."""
    pending: list[str] = log.__dict__.setdefault(_PENDING_ATTRIBUTE, [])
    pending += [f"Notification failed: {line}" for line in failures]
    if not now or not pending or log.pk is None:
        return
    database = log._state.db or log.database
    rows = RollbackLog.objects.using(database).filter(pk=log.pk)
    try:
        stored = rows.values_list("output", flat=True).first() or ""
        output = "\n".join([stored, *pending] if stored else pending)
        rows.update(output=output)
    except DatabaseError as exc:
        logger.warning("Notification failures not written on log entry %s: %s", log.pk, exc)
        return
    log.output = output
    pending.clear()


def _settings_for(event: str) -> NotifyConfig | None:
    try:
        settings = config()
    except ImproperlyConfigured as exc:  # `manage.py check` says so too; never break a rollback
        logger.error("No notification sent: %s", exc)
        return None
    return settings if settings.active and event in settings.events else None


def on_state_saved(
    sender: Any,
    *,
    state: MigrationState,
    previous: MigrationState | None,
    database: str,
    **kwargs: Any,
) -> None:
    settings = _settings_for("state_saved")
    if settings is not None:
        deliver(saved_event(state, previous, database), settings)  # no log entry to write on


def _on_rollback(name: str, log: RollbackLog, *, write: bool) -> None:
    settings = _settings_for(name)
    if settings is None:
        if write:
            record_failures(log, [])  # earlier failures still land on the entry
        return
    failures = deliver(rollback_event(name, log, settings.base_url), settings)
    record_failures(log, failures, now=write)


def on_rollback_requested(sender: Any, *, log: RollbackLog, **kwargs: Any) -> None:
    _on_rollback("rollback_requested", log, write=True)


def on_rollback_started(sender: Any, *, log: RollbackLog, **kwargs: Any) -> None:
    _on_rollback("rollback_started", log, write=False)


def on_rollback_finished(sender: Any, *, log: RollbackLog, **kwargs: Any) -> None:
    _on_rollback("rollback_finished", log, write=True)


def on_archive_restored(sender: Any, *, log: RollbackLog, result: Any, **kwargs: Any) -> None:
    settings = _settings_for("archive_restored")
    if settings is None:
        return
    database = log._state.db or log.database
    event = restored_event(log, int(result.restored), database, settings.base_url)
    record_failures(log, deliver(event, settings))


def connect() -> None:
    """Called by the app's ready(); dispatch_uid keeps a second call from doubling them."""
    signals.state_saved.connect(on_state_saved, dispatch_uid="django_rollback.notify")
    signals.rollback_requested.connect(on_rollback_requested, dispatch_uid="django_rollback.notify")
    signals.rollback_started.connect(on_rollback_started, dispatch_uid="django_rollback.notify")
    signals.rollback_finished.connect(on_rollback_finished, dispatch_uid="django_rollback.notify")
    signals.archive_restored.connect(on_archive_restored, dispatch_uid="django_rollback.notify")
