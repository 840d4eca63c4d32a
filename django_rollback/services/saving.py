"""Saving what is applied now as the state of the deployed commit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.translation import ngettext

from .. import signals
from ..archive import advance_past_archives, kept_archives, restorable_now
from ..exceptions import (
    RollbackError,
    RollbackInProgressError,
    UnappliedMigrationsError,
)
from ..locks import rollback_lock
from ..models import (
    MigrationKey,
    MigrationState,
    RollbackLog,
)
from ..planning import labels
from ..snapshot import (
    applied_migrations,
    squashes_on_disk,
    unapplied_on_disk,
)
from .commit import CurrentCommit, current_commit
from .connection import ready_connection
from .readiness import Readiness, readiness

# How long a save waits for a running rollback before it gives up (pods start during one).
SAVE_WAIT_SECONDS = 60.0


@dataclass
class SaveResult:
    state: MigrationState
    created: bool
    updated: bool  # the latest state was saved again with other migrations applied
    tags_changed: bool
    latest: MigrationState
    previous: MigrationState | None
    added: frozenset[MigrationKey] = frozenset()  # compared with the previous state
    removed: frozenset[MigrationKey] = frozenset()
    # A rollback's archive whose tables and columns exist again: it can be restored now.
    restorable: RollbackLog | None = None
    # Whether this deploy could be rolled back to the previous state; None when there is no
    # previous state or this state is not the latest (an older image saved again).
    readiness: Readiness | None = None
    tag_warning: str | None = None  # the tags given disagree with git's
    unapplied: tuple[MigrationKey, ...] = ()  # on disk, not applied (saved anyway on request)

    @property
    def is_latest(self) -> bool:
        return self.latest.pk == self.state.pk


def save_state(
    *,
    repo_path: str | Path | None = None,
    database: str = DEFAULT_DB_ALIAS,
    commit: str | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    wait: float = SAVE_WAIT_SECONDS,
    replace_tags: bool = False,
    allow_unapplied: bool = False,
    on_wait: Callable[[], None] | None = None,
) -> SaveResult:
    """Save what is applied now as the state of the current commit (see current_commit()).

    Runs under the rollback lock, so a save never records a half-finished rollback: it waits
    up to `wait` seconds for a running one (`on_wait` is called when it starts waiting). Many
    processes saving the same commit at once leave one state.

    Refuses when migration files on disk are not applied (unless `allow_unapplied`): right
    after a rollback the newer code is still deployed, and its commit would be saved with the
    older migrations."""
    connection = ready_connection(database)
    head = current_commit(repo_path=repo_path, commit=commit, tags=tags, replace_tags=replace_tags)
    try:
        with rollback_lock(connection, wait, on_wait=on_wait):
            result = _save_locked(connection, head, allow_unapplied)
            kept = kept_archives(database)  # read once: the counters, then the restore hint
            advance_past_archives(connection, kept)
            if result.previous is not None and result.is_latest:
                try:
                    result.readiness = readiness(connection, result.state, result.previous)
                except RollbackError as exc:  # the files cannot be planned: say so, keep the save
                    result.readiness = Readiness(result.previous, 0, 0, (), (str(exc),))
                stored = result.readiness.as_dict()
                if result.state.readiness != stored:
                    result.state.readiness = stored
                    result.state.save(using=database, update_fields=["readiness"])
        result.restorable = restorable_now(database, kept)
        signals.send_state_saved(result)  # outside the lock: receivers may be slow
        return result
    except RollbackInProgressError:
        raise RollbackInProgressError(
            f"A rollback is running on database '{database}' (waited {wait:g}s): the state "
            "was not saved; run save_migrations_state again when it has finished."
        ) from None


def _save_locked(
    connection: BaseDatabaseWrapper, head: CurrentCommit, allow_unapplied: bool
) -> SaveResult:
    database = connection.alias
    applied = applied_migrations(connection)
    unapplied = unapplied_on_disk(applied)
    if unapplied and not allow_unapplied:
        raise UnappliedMigrationsError(_unapplied_message(unapplied, database))
    fields = {
        "tags": head.tag_list,
        "migrations": MigrationState.serialize_migrations(applied),
        # Called only when the row is written: saving an unchanged state again (every
        # container start) need not read the migration files at all.
        "squashes": squashes_on_disk,
    }
    states = MigrationState.objects.using(database)
    created = updated = tags_changed = False
    try:
        with transaction.atomic(using=database):
            state, created = states.get_or_create(commit=head.sha, defaults=fields)
    except IntegrityError:  # another process saved the same commit a moment ago
        state = states.get(commit=head.sha)
    latest = states.latest_state()
    assert latest is not None
    if not created:
        tags_changed, updated = _save_again(state, head, applied, latest)
    previous = states.before(state).first()
    before = previous.migration_set if previous else frozenset()
    return SaveResult(
        state=state,
        created=created,
        updated=updated,
        tags_changed=tags_changed,
        latest=latest if latest.pk != state.pk else state,
        previous=previous,
        added=state.migration_set - before,
        removed=before - state.migration_set,
        tag_warning=head.tag_warning,
        unapplied=tuple(unapplied),
    )


def _unapplied_message(unapplied: list[MigrationKey], database: str) -> str:
    return ngettext(
        "Not saved: %(count)d migration on disk is not applied in database "
        "'%(database)s' (%(names)s). Right after a rollback, deploy the release it "
        "went back to; or run migrate to return to this one (--allow-unapplied saves "
        "anyway).",
        "Not saved: %(count)d migrations on disk are not applied in database "
        "'%(database)s' (%(names)s). Right after a rollback, deploy the release it "
        "went back to; or run migrate to return to this one (--allow-unapplied saves "
        "anyway).",
        len(unapplied),
    ) % {
        "count": len(unapplied),
        "database": database,
        "names": labels(unapplied[:5]) + (", ..." if len(unapplied) > 5 else ""),
    }


def _save_again(
    state: MigrationState,
    head: CurrentCommit,
    applied: frozenset[MigrationKey],
    latest: MigrationState,
) -> tuple[bool, bool]:
    """A commit saved before: its tags, and (when it is the latest) its migrations, brought
    up to date. Returns (tags changed, migrations updated)."""
    changed: list[str] = []
    tags_changed = updated = False
    # Unknown tags (a commit given without them, no git) keep the stored ones.
    if head.tags_known and list(state.tags) != head.tag_list:
        state.tags, tags_changed = head.tag_list, True
        changed.append("tags")
    # Only the latest state describes the database now; older ones are history.
    if latest.pk == state.pk and (state.migration_set != applied or state.unresolved):
        state.migrations = MigrationState.serialize_migrations(applied)
        state.squashes = squashes_on_disk()
        state.unresolved = []  # a state converted from 0.4.0 now has its full set
        updated = True
        changed += ["migrations", "squashes", "unresolved"]
    if changed:
        state.save(update_fields=changed)
    return tags_changed, updated
