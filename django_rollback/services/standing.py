"""Where the database stands: HEAD, its saved state, the latest state, drift, the list."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from django.db import (
    DEFAULT_DB_ALIAS,
    models,
)
from django.db.models import Q, Subquery
from django.utils.translation import gettext as _

from ..exceptions import (
    RollbackError,
)
from ..execution import (
    describe_state,
)
from ..models import (
    MigrationKey,
    MigrationState,
    RollbackLog,
    app_count,
    describe_commit,
)
from ..planning import labels
from ..presenters.text import migrations_text
from ..snapshot import (
    applied_migrations,
    parse_squashes,
    with_squashes,
)
from .commit import CurrentCommit, current_commit
from .connection import ready_connection
from .squashes import known_squashes


@dataclass
class StateListing:
    states: list[MigrationState]
    head: CurrentCommit | None
    head_error: str | None = None
    standing: Standing | None = None


def list_states(
    *,
    repo_path: str | Path | None = None,
    database: str = DEFAULT_DB_ALIAS,
    commit: str | None = None,
) -> StateListing:
    """Saved states, newest first, with the current commit when it is known and where the
    database stands (the same sentence as --check and the admin)."""
    ready_connection(database)
    head, head_error = None, None
    try:
        head = current_commit(repo_path=repo_path, commit=commit, option="--current-commit")
    except RollbackError as exc:
        head_error = str(exc)
    view = overview(repo_path=repo_path, database=database, head=head, head_error=head_error)
    states = list(MigrationState.objects.using(database).order_by("-id"))
    return StateListing(states, head, head_error, view.standing)


@dataclass(frozen=True)
class UndoSummary:
    """What rolling back to a state would undo, from the applied migrations alone."""

    migrations: int  # applied now, not in the state: what a rollback unapplies
    apps: int
    missing: int  # in the state but not applied now: a rollback cannot bring these back


@dataclass(frozen=True)
class PastRollback:
    """The succeeded rollback that left a commit: its log entry and where it went."""

    log_id: int
    to_commit: str
    to_tags: list[str]


StandingStatus = Literal[
    "ok", "drifted", "not_latest", "rolled_back", "not_saved", "unknown_commit"
]


@dataclass(frozen=True)
class Standing:
    """Where the database stands, in one sentence: what `--check`, `--list`, the admin's
    status panel and the states list all say, in the same words.

    status: "ok" (HEAD's state is the latest and matches what is applied); "drifted" (it is the
    latest but the applied migrations differ); "not_latest" (a newer state exists: an older
    release runs); "rolled_back" (a rollback left HEAD: deploy the release it went back to);
    "not_saved" (HEAD was never saved, or nothing was); "unknown_commit"."""

    status: StandingStatus
    message: str
    missing: frozenset[MigrationKey] = frozenset()  # in HEAD's state, not applied now
    unexpected: frozenset[MigrationKey] = frozenset()  # applied now, not in HEAD's state

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def badge(self) -> str:
        """The short word beside the commit in the admin."""
        return {
            "ok": _("saved"),
            "drifted": _("drift"),
            "not_latest": _("not the latest"),
            "rolled_back": _("rolled back"),
            "not_saved": _("not saved"),
            "unknown_commit": _("unknown"),
        }[self.status]


def _standing(view: DatabaseOverview) -> Standing:
    database, head, state, latest = view.database, view.head, view.current, view.latest
    if head is None:
        return Standing("unknown_commit", view.head_error or _("The current commit is unknown."))
    name = _("The current %(commit)s") % {"commit": head.described}
    if state is None:
        return _without_state(view, name)
    assert latest is not None
    if latest.pk != state.pk:
        return Standing(
            "not_latest",
            _(
                "%(name)s is not the latest saved state in database '%(database)s' (the "
                "latest is %(latest)s): an older release is running."
            )
            % {"name": name, "database": database, "latest": describe_state(latest)},
        )
    missing, unexpected = view.differences(state)
    if missing or unexpected:
        return _drifted(view, head.described, missing, unexpected)
    return Standing(
        "ok",
        _("OK: database '%(database)s' matches the saved state of %(name)s (%(migrations)s).")
        % {
            "database": database,
            "name": head.described,
            "migrations": migrations_text(len(view.applied)),
        },
    )


def _without_state(view: DatabaseOverview, name: str) -> Standing:
    """HEAD has no saved state: a rollback left it, nothing was saved, or not HEAD."""
    database = view.database
    if view.rolled_back_by is not None:
        log = view.rolled_back_by
        return Standing(
            "rolled_back",
            _(
                "%(name)s has no saved state in database '%(database)s': it was rolled back "
                "to %(target)s (log entry %(log)s): deploy that release now, or run migrate "
                "to return to this one."
            )
            % {
                "name": name,
                "database": database,
                "target": describe_commit(log.to_commit, log.to_tags),
                "log": log.log_id,
            },
        )
    if view.latest is None:
        return Standing(
            "not_saved",
            _(
                "No migration state is saved in database '%(database)s' yet: run "
                "save_migrations_state after migrate."
            )
            % {"database": database},
        )
    return Standing(
        "not_saved",
        _("%(name)s has no saved state in database '%(database)s': run save_migrations_state.")
        % {"name": name, "database": database},
    )


def _drifted(
    view: DatabaseOverview,
    described: str,
    missing: frozenset[MigrationKey],
    unexpected: frozenset[MigrationKey],
) -> Standing:
    parts = [_("%(count)d saved but not applied") % {"count": len(missing)}] if missing else []
    if unexpected:
        parts.append(_("%(count)d applied but not saved") % {"count": len(unexpected)})
    return Standing(
        "drifted",
        _(
            "Database '%(database)s' no longer matches the saved state of %(name)s: "
            "%(parts)s (e.g. %(example)s)."
        )
        % {
            "database": view.database,
            "name": described,
            "parts": ", ".join(parts),
            "example": labels(sorted(missing | unexpected)[:3]),
        },
        frozenset(missing),
        frozenset(unexpected),
    )


@dataclass
class DatabaseOverview:
    """Where the database stands: HEAD, its saved state, the latest state, and drift."""

    database: str
    head: CurrentCommit | None
    head_error: str | None
    current: MigrationState | None  # the saved state of HEAD
    latest: MigrationState | None
    applied: frozenset[MigrationKey]
    # When HEAD has no state because a rollback left it: that rollback.
    rolled_back_by: PastRollback | None = None
    _squashes: dict[MigrationKey, frozenset[MigrationKey]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def standing(self) -> Standing:
        """The one sentence every skin shows (see Standing)."""
        return _standing(self)

    @property
    def drifted(self) -> bool:
        """The applied migrations are no longer those of the latest saved state."""
        return self.latest is not None and any(self.differences(self.latest))

    @property
    def drift(self) -> tuple[frozenset[MigrationKey], frozenset[MigrationKey]]:
        """(applied but not saved, saved but not applied) against the latest state."""
        if self.latest is None:
            return self.applied, frozenset()
        missing, unexpected = self.differences(self.latest)
        return unexpected, missing

    def differences(
        self, state: MigrationState
    ) -> tuple[frozenset[MigrationKey], frozenset[MigrationKey]]:
        """(saved but not applied, applied but not saved), a squash taken as what it
        replaces, as the planner takes it: newer code's `migrate` records a squash whose
        replaced migrations are all applied, and that row alone is no drift."""
        saved = state.migration_set
        if saved == self.applied:
            return frozenset(), frozenset()  # the usual case: no squash to look up
        if self._squashes is None:  # looked up once per page, however often it is asked
            self._squashes = parse_squashes(*known_squashes(self.database))
        squashes = self._squashes
        saved_norm, applied_norm = (
            with_squashes(saved, squashes),
            with_squashes(self.applied, squashes),
        )
        return saved_norm - applied_norm, applied_norm - saved_norm

    def undo_summary(self, state: MigrationState) -> UndoSummary:
        undone = self.applied - state.migration_set
        return UndoSummary(
            migrations=len(undone),
            apps=app_count(undone),
            missing=len(state.migration_set - self.applied),
        )


def overview(
    *,
    repo_path: str | Path | None = None,
    database: str = DEFAULT_DB_ALIAS,
    head: CurrentCommit | None = None,
    head_error: str | None = None,
) -> DatabaseOverview:
    """Two queries: the latest state with HEAD's (and the rollback that left HEAD, when one
    did), and the applied migrations. The admin changelist calls it on every page.
    `head` (or `head_error`): the current commit when the caller has asked already (a
    command's flags)."""
    connection = ready_connection(database, check_tables=False)
    if head is None and head_error is None:
        try:  # flags are not there in the admin; the environment, settings or git tell
            head = current_commit(repo_path=repo_path)
        except RollbackError as exc:
            head_error = str(exc)
    states = MigrationState.objects.using(database)
    latest_id = states.order_by("-id").values("id")[:1]
    wanted = Q(id=Subquery(latest_id))
    found_states = states.filter(wanted)
    if head is not None:
        found_states = states.filter(wanted | Q(commit=head.sha))
        rollbacks = RollbackLog.objects.using(database).rolled_back_from(head.sha)
        found_states = found_states.annotate(
            rolled_back_log_id=Subquery(rollbacks.values("id")[:1]),
            rolled_back_to=Subquery(rollbacks.values("to_commit")[:1]),
            rolled_back_to_tags=Subquery(
                rollbacks.values("to_tags")[:1], output_field=models.JSONField()
            ),
        )
    found = list(found_states.order_by("-id"))
    latest = found[0] if found else None
    current = next((s for s in found if head is not None and s.commit == head.sha), None)
    rolled_back_by = None
    # The annotations above, present on the states only when HEAD is known.
    log_id = getattr(latest, "rolled_back_log_id", None)
    if latest is not None and current is None and log_id:
        rolled_back_by = PastRollback(
            log_id=log_id,
            to_commit=getattr(latest, "rolled_back_to", ""),
            to_tags=list(getattr(latest, "rolled_back_to_tags", None) or []),
        )
    return DatabaseOverview(
        database=database,
        head=head,
        head_error=head_error,
        current=current,
        latest=latest,
        # django_rollback's tables exist (we just read one), so django_migrations does too.
        applied=applied_migrations(connection, table_exists=True),
        rolled_back_by=rolled_back_by,
    )
