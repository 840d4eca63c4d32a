from __future__ import annotations

from collections.abc import Iterable

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import SHORT_COMMIT_LENGTH as SHORT_COMMIT_LENGTH, short_commit as short_commit

MigrationKey = tuple[str, str]

#: What a rollback's audit entry says when it ran from the command line with approvals on.
APPROVAL_BYPASSED = "approval bypassed (command line)"


def tags_text(tags: Iterable[str] | None) -> str:
    """How messages show a commit's tags: ['v1.2.0', 'hotfix'], or (no tags)."""
    listed = list(tags or [])
    return str(listed) if listed else "(no tags)"


def describe_commit(sha: str, tags: Iterable[str] | None) -> str:
    """How every message names a commit: the full hash and its tags."""
    return f'commit "{sha}" {tags_text(tags)}'


def app_count(keys: Iterable[MigrationKey] | Iterable[list[str]]) -> int:
    """How many apps these (app, name) pairs belong to."""
    return len({key[0] for key in keys})


class MigrationStateQuerySet(models.QuerySet["MigrationState"]):
    """Order is the database-assigned id: containers' wall clocks never decide "latest"."""

    def latest_state(self) -> MigrationState | None:
        return self.order_by("-id").first()

    def before(self, state: MigrationState) -> MigrationStateQuerySet:
        return self.filter(id__lt=state.id).order_by("-id")

    def newer_than(self, state: MigrationState) -> MigrationStateQuerySet:
        return self.filter(id__gt=state.id).order_by("id")

    def with_commit_prefix(self, prefix: str) -> MigrationStateQuerySet:
        return self.filter(commit__startswith=prefix.lower())

    def with_tag(self, tag: str) -> list[MigrationState]:
        # Tags are a JSON list; `contains` on JSON is not portable to SQLite, and the
        # number of saved states is small enough to filter the light columns here.
        return [s for s in self.only("id", "commit", "tags") if tag in (s.tags or [])]


class MigrationState(models.Model):
    """The full set of applied migrations of every app, saved for one git commit."""

    commit = models.CharField(_("commit"), max_length=40, unique=True)
    tags = models.JSONField(_("tags"), default=list, blank=True)
    migrations = models.JSONField(
        _("applied migrations"), default=list, help_text=_("Sorted [app, name] pairs.")
    )
    squashes = models.JSONField(
        _("squashed migrations"),
        default=dict,
        blank=True,
        help_text=_('Squashed migrations on disk at save time: {"app.name": [[app, name], ...]}.'),
    )
    saved_at = models.DateTimeField(_("saved at"), default=timezone.now, editable=False)
    readiness = models.JSONField(
        _("rollback readiness"),
        null=True,
        blank=True,
        help_text=_(
            "Whether a rollback from this state to the one saved before it was possible when "
            "it was saved: the target commit and the irreversible migrations in the way."
        ),
    )
    # Only states converted from django-rollback 0.4.0 (which kept the newest migration of
    # each app, not the full set) can have these: newest migrations whose files were not on
    # disk at the upgrade, so their ancestors, and the full set, are unknown.
    # Nullable so that rows written by hand or by older tools, which do not know the column,
    # still insert; None reads as [].
    unresolved = models.JSONField(
        _("unresolved migrations"),
        default=list,
        blank=True,
        null=True,
        help_text=_(
            "Converted from django-rollback 0.4.0 while these [app, name] migration files were "
            "not on disk: the full set is unknown, so the state is no rollback target."
        ),
    )

    objects = MigrationStateQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        get_latest_by = "id"
        verbose_name = _("migration state")
        verbose_name_plural = _("migration states")
        permissions = [
            ("rollback_migrationstate", _("Can roll the database back to a saved state")),
        ]

    def __str__(self) -> str:
        return f"{self.short_commit} ({', '.join(self.tags)})" if self.tags else self.short_commit

    @property
    def short_commit(self) -> str:
        return short_commit(self.commit)

    @property
    def tags_display(self) -> str:
        return tags_text(self.tags)

    @property
    def migration_set(self) -> frozenset[MigrationKey]:
        return frozenset((app, name) for app, name in self.migrations)

    @property
    def app_count(self) -> int:
        return app_count(self.migrations)

    @property
    def unresolved_labels(self) -> str:
        """The unresolved migrations as "app.name, ..." ("" for a complete state)."""
        return ", ".join(f"{app}.{name}" for app, name in sorted(map(tuple, self.unresolved or [])))

    @staticmethod
    def serialize_migrations(keys: Iterable[MigrationKey]) -> list[list[str]]:
        return [[app, name] for app, name in sorted(keys)]


class RollbackLogQuerySet(models.QuerySet["RollbackLog"]):
    """The questions the services and the admin ask of the audit trail."""

    def active(self) -> RollbackLogQuerySet:
        """Entries a process is (or should be) working on."""
        return self.filter(status__in=RollbackLog.ACTIVE)

    def succeeded(self) -> RollbackLogQuerySet:
        return self.filter(status=RollbackLog.Status.SUCCEEDED)

    def rolled_back_from(self, commit: str) -> RollbackLogQuerySet:
        """Succeeded rollbacks that left `commit`, newest first."""
        return self.succeeded().filter(from_commit=commit).order_by("-id")

    def open_requests(self) -> RollbackLogQuerySet:
        """Approval requests that may still run (awaiting approval or approved), oldest first."""
        return self.filter(status__in=RollbackLog.OPEN_REQUESTS).order_by("id")

    def rehearsals_of(self, from_commit: str, to_commit: str) -> RollbackLogQuerySet:
        """Successful rehearsals from one commit to another, newest first."""
        return self.filter(
            status=RollbackLog.Status.REHEARSAL,
            from_commit=from_commit,
            to_commit=to_commit,
            error="",
        ).order_by("-id")


class RollbackLog(models.Model):
    """One row per rollback or dry run; kept when the states it names are pruned."""

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        DRY_RUN = "dry_run", _("dry run")
        INTERRUPTED = "interrupted", _("interrupted")  # its process died while it ran
        REHEARSAL = "rehearsal", _("rehearsal")  # ran in a transaction that was rolled back
        QUEUED = "queued", _("queued")  # started from the admin; its runner has not begun yet
        # Approvals by a second person (approvals.py): a request waits, then is approved
        # (runs later, from a terminal), rejected, cancelled by its requester, expired
        # (APPROVAL_TTL), or stale (the plan changed before it was approved).
        AWAITING_APPROVAL = "awaiting_approval", _("awaiting approval")
        APPROVED = "approved", _("approved")
        REJECTED = "rejected", _("rejected")
        CANCELLED = "cancelled", _("cancelled")
        EXPIRED = "expired", _("expired")
        STALE = "stale", _("stale")

    ACTIVE = (Status.QUEUED, Status.RUNNING)  # a process is (or should be) working on it
    OPEN_REQUESTS = (Status.AWAITING_APPROVAL, Status.APPROVED)  # may still run

    class Source(models.TextChoices):
        """Which skin started it."""

        COMMAND = "command", _("command")
        ADMIN = "admin", _("admin")

    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration = models.FloatField(_("duration (s)"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=32, choices=Status.choices)
    database = models.CharField(_("database"), max_length=100, default="default")
    from_commit = models.CharField(_("from commit"), max_length=40)
    from_tags = models.JSONField(_("from tags"), default=list, blank=True)
    to_commit = models.CharField(_("to commit"), max_length=40)
    to_tags = models.JSONField(_("to tags"), default=list, blank=True)
    plan = models.JSONField(_("plan"), default=list, blank=True)
    output = models.TextField(_("output"), blank=True)
    error = models.TextField(_("error"), blank=True)
    user = models.CharField(_("user"), max_length=150, blank=True)
    source = models.CharField(_("source"), max_length=20, blank=True, choices=Source.choices)
    host = models.CharField(_("host"), max_length=255, blank=True)
    pruned_states = models.JSONField(_("pruned states"), default=list, blank=True)
    # What this rollback kept of the tables and columns it dropped (archive.py describes the
    # document): the archive tables live in the same database until restored or purged.
    # Null, not {}, when there is none: rows written by code that predates the field (a
    # raw INSERT, an older release during a rolling deploy) stay valid.
    archive = models.JSONField(_("archive"), null=True, blank=True, default=None)
    # Progress, written while it runs from a connection of its own (see progress.py), so the
    # admin can show it while the rollback's own transaction is still open.
    fingerprint = models.CharField(_("plan fingerprint"), max_length=64, blank=True)
    steps_total = models.PositiveIntegerField(_("steps"), default=0)
    steps_done = models.PositiveIntegerField(_("steps done"), default=0)
    running_step = models.CharField(_("running step"), max_length=255, blank=True)
    step_started_at = models.DateTimeField(_("step started at"), null=True, blank=True)
    pid = models.PositiveIntegerField(_("runner process id"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("runner last seen"), null=True, blank=True)
    # A rollback requested for approval (approvals.py): until when it may be approved, and
    # every decision on it, oldest first: {"event", "user", "at", "comment"} with event one of
    # requested (its comment is the reason; "needed": approvals it needs), approved, rejected,
    # cancelled, expired, stale, run, bypassed. Nullable like `archive`: rows inserted by an
    # older release during a rolling deploy, which does not know the columns, stay valid.
    expires_at = models.DateTimeField(_("request expires at"), null=True, blank=True)
    approval_trail = models.JSONField(_("approval trail"), default=list, null=True, blank=True)

    objects = RollbackLogQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = _("rollback log entry")
        verbose_name_plural = _("rollback log entries")
        permissions = [
            ("approve_rollback", _("Can approve a rollback requested by someone else")),
        ]

    def __str__(self) -> str:
        status = self.get_status_display()
        return f"{short_commit(self.from_commit)} → {short_commit(self.to_commit)} ({status})"

    def add_event(self, event: str, user: str, comment: str = "", **extra: object) -> None:
        """Append one decision to the approval trail (saved by the caller)."""
        entry = {"event": event, "user": user, "at": timezone.now().isoformat()}
        self.approval_trail = [*(self.approval_trail or []), {**entry, "comment": comment, **extra}]

    def events(self, event: str) -> list[dict[str, object]]:
        return [e for e in self.approval_trail or [] if e.get("event") == event]

    @property
    def is_request(self) -> bool:
        """Made by a request for approval (whatever became of it)."""
        return bool(self.events("requested"))

    @property
    def reason(self) -> str:
        """Why it was requested ("" for an entry that was no request)."""
        requested = self.events("requested")
        return str(requested[0].get("comment", "")) if requested else ""

    @property
    def approvals_needed(self) -> int:
        requested = self.events("requested")
        return int(str(requested[0].get("needed", 1))) if requested else 0

    @property
    def approvers(self) -> list[str]:
        """Who approved it, each once, in order."""
        return list(dict.fromkeys(str(e["user"]) for e in self.events("approved")))


class FleetDecision(models.Model):
    """The outcome of one `rollback_migrations --atomic` run (fleet/atomic.py), kept where the
    coordinator can write it without a transaction of its own: "pending" while the targets are
    being prepared, "commit" before the first COMMIT PREPARED, "abort" before the first ROLLBACK
    PREPARED. Whoever finds the run's prepared transactions later resolves them by it: commit
    when it says so, roll back otherwise (no row, "pending" or "abort")."""

    class Decision(models.TextChoices):
        PENDING = "pending", _("pending")
        COMMIT = "commit", _("commit")
        ABORT = "abort", _("abort")

    fleet = models.CharField(_("fleet run"), max_length=32, unique=True)
    decision = models.CharField(_("decision"), max_length=16, choices=Decision.choices)
    targets = models.JSONField(_("targets"), default=list, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.CharField(_("resolved by"), max_length=255, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("fleet decision")
        verbose_name_plural = _("fleet decisions")

    def __str__(self) -> str:
        return f"{self.fleet} ({self.get_decision_display()})"
