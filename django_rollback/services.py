"""The core that the commands and the admin call. Nothing here prints."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connections,
    models,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q, QuerySet, Subquery
from django.utils.connection import ConnectionDoesNotExist

from . import conf
from .background import start_rollback as start_rollback  # the admin's: outside the request
from .exceptions import (
    AmbiguousCommitError,
    DatabaseUnavailableError,
    NotMigratedError,
    PlanRefusedError,
    RepositoryError,
    RollbackError,
    RollbackInProgressError,
    StateNotSavedError,
    UnknownReferenceError,
    first_line,
)

# Running a plan lives in execution.py; the skins reach it through this module.
from .execution import (
    RollbackResult as RollbackResult,
    StepEvent as StepEvent,
    current_user as current_user,
    describe_state as describe_state,
    execute as execute,
    record_dry_run as record_dry_run,
)
from .git import GitRepository, validate_commit_prefix
from .locks import rollback_lock
from .models import MigrationKey, MigrationState, RollbackLog, app_count
from .planning import RollbackPlan, build_plan, labels
from .progress import LiveProgress as LiveProgress, live_progress as live_progress
from .snapshot import applied_migrations, squashes_on_disk

# --- shared checks -------------------------------------------------------------------------


def ready_connection(
    database: str = DEFAULT_DB_ALIAS, *, check_tables: bool = True
) -> BaseDatabaseWrapper:
    """The connection, once it is known to answer and to hold the django_rollback tables."""
    try:
        connection = connections[database]
    except ConnectionDoesNotExist:
        raise RollbackError(f"Unknown database alias '{database}'.") from None
    try:
        connection.ensure_connection()
        if not check_tables:  # the caller is about to read those tables anyway
            return connection
        tables = set(connection.introspection.table_names())
    except DatabaseError as exc:
        raise DatabaseUnavailableError(
            f"Cannot connect to database '{database}': {first_line(exc)}"
        ) from None
    needed = {MigrationState._meta.db_table, RollbackLog._meta.db_table}
    if not needed <= tables:
        raise NotMigratedError(
            f"The django_rollback tables do not exist in database '{database}' yet: "
            "run `manage.py migrate` first."
        )
    return connection


def open_repository(repo_path: str | Path | None = None) -> GitRepository:
    return GitRepository(repo_path or conf.repo_path())


FULL_SHA = re.compile(r"^[0-9a-fA-F]{40}$")

CommitSource = Literal["option", "environment", "settings", "git"]


@dataclass(frozen=True)
class CurrentCommit:
    """The commit being deployed, and where it was learnt (`source`). `tags_known` is
    false for a commit given without tags that git cannot tag either (no repository, or
    one without that commit)."""

    sha: str
    tags: tuple[str, ...]
    source: CommitSource
    tags_known: bool = True
    repo: GitRepository | None = field(default=None, compare=False, repr=False)

    @property
    def tag_list(self) -> list[str]:
        return list(self.tags)


def current_commit(
    *,
    repo_path: str | Path | None = None,
    commit: str | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
) -> CurrentCommit:
    """The deployed commit: from `commit`, DJANGO_ROLLBACK_COMMIT, DJANGO_ROLLBACK["COMMIT"],
    in that order, and only then from git. Tags follow the same order; for a commit given
    explicitly without tags they come from git when a repository is there."""
    sha = commit
    source: CommitSource = "option"
    if not sha:
        sha, source = os.environ.get(conf.COMMIT_ENV), "environment"
    if not sha:
        sha, source = conf.get_setting("COMMIT"), "settings"
    given_tags: tuple[str, ...] | None = None
    if tags:
        given_tags = conf.split_tags(tags)
    elif conf.TAGS_ENV in os.environ:
        given_tags = conf.split_tags(os.environ[conf.TAGS_ENV])
    elif conf.get_setting("TAGS") is not None:
        given_tags = conf.split_tags(conf.get_setting("TAGS"))
    if not sha:
        try:
            repo = open_repository(repo_path)
        except RepositoryError as exc:
            raise RepositoryError(
                f"The current commit is unknown: {exc} Set {conf.COMMIT_ENV} or pass it "
                "(save_migrations_state --commit SHA, rollback_migrations --current-commit SHA)."
            ) from None
        head = repo.head()
        tags = head.tags if given_tags is None else given_tags
        return CurrentCommit(head.sha, tags, "git", repo=repo)
    origin = {"option": "--commit", "environment": conf.COMMIT_ENV, "settings": "the setting"}
    if not FULL_SHA.match(sha):
        raise UnknownReferenceError(
            f'{origin[source]} "{sha}" is not a full commit hash: give all 40 hexadecimal '
            "characters (git rev-parse HEAD)."
        )
    sha = sha.lower()
    found = _repository_if_any(repo_path)
    if given_tags is None and found is not None and found.has_commit(sha):
        given_tags = found.tags_at(sha)
    return CurrentCommit(sha, given_tags or (), source, given_tags is not None, found)


def _repository_if_any(repo_path: str | Path | None) -> GitRepository | None:
    """The git repository when there is one; images without .git have none."""
    try:
        return open_repository(repo_path)
    except RepositoryError:
        return None


# --- saving --------------------------------------------------------------------------------

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
) -> SaveResult:
    """Save what is applied now as the state of the current commit (see current_commit()).

    Runs under the rollback lock, so a save never records a half-finished rollback: it waits
    up to `wait` seconds for a running one. Many processes saving the same commit at once
    leave one state."""
    connection = ready_connection(database)
    head = current_commit(repo_path=repo_path, commit=commit, tags=tags)
    try:
        with rollback_lock(connection, wait):
            return _save_locked(connection, head)
    except RollbackInProgressError:
        raise RollbackInProgressError(
            f"A rollback is running on database '{database}' (waited {wait:g}s): the state "
            "was not saved; run save_migrations_state again when it has finished."
        ) from None


def _save_locked(connection: BaseDatabaseWrapper, head: CurrentCommit) -> SaveResult:
    database = connection.alias
    applied = applied_migrations(connection)
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
        changed: list[str] = []
        # Unknown tags (a commit given without them, no git) keep the stored ones.
        if head.tags_known and list(state.tags) != fields["tags"]:
            state.tags, tags_changed = fields["tags"], True
            changed.append("tags")
        # Only the latest state describes the database now; older ones are history.
        if latest.pk == state.pk and (state.migration_set != applied or state.unresolved):
            state.migrations, state.squashes = fields["migrations"], squashes_on_disk()
            state.unresolved = []  # a state converted from 0.4.0 now has its full set
            updated = True
            changed += ["migrations", "squashes", "unresolved"]
        if changed:
            state.save(update_fields=changed)
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
    )


# --- listing -------------------------------------------------------------------------------


@dataclass
class StateListing:
    states: list[MigrationState]
    head: CurrentCommit | None
    head_error: str | None = None


def list_states(
    *,
    repo_path: str | Path | None = None,
    database: str = DEFAULT_DB_ALIAS,
    commit: str | None = None,
) -> StateListing:
    """Saved states, newest first, with the current commit when it is known."""
    ready_connection(database)
    head, head_error = None, None
    try:
        head = current_commit(repo_path=repo_path, commit=commit)
    except RollbackError as exc:
        head_error = str(exc)
    states = list(MigrationState.objects.using(database).order_by("-id"))
    return StateListing(states, head, head_error)


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

    @property
    def drifted(self) -> bool:
        """The applied migrations are no longer those of the latest saved state."""
        return self.latest is not None and self.latest.migration_set != self.applied

    @property
    def drift(self) -> tuple[frozenset[MigrationKey], frozenset[MigrationKey]]:
        """(applied but not saved, saved but not applied) against the latest state."""
        saved = self.latest.migration_set if self.latest else frozenset()
        return self.applied - saved, saved - self.applied

    def undo_summary(self, state: MigrationState) -> UndoSummary:
        undone = self.applied - state.migration_set
        return UndoSummary(
            migrations=len(undone),
            apps=app_count(undone),
            missing=len(state.migration_set - self.applied),
        )


def overview(
    *, repo_path: str | Path | None = None, database: str = DEFAULT_DB_ALIAS
) -> DatabaseOverview:
    """Two queries: the latest state with HEAD's (and the rollback that left HEAD, when one
    did), and the applied migrations. The admin changelist calls it on every page."""
    connection = ready_connection(database, check_tables=False)
    head: CurrentCommit | None = None
    head_error = None
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
        rollbacks = _rollbacks_from(head.sha, database)
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


def _rollbacks_from(commit: str, database: str) -> QuerySet[RollbackLog]:
    """Succeeded rollbacks that left `commit`, newest first."""
    return (
        RollbackLog.objects.using(database)
        .filter(from_commit=commit, status=RollbackLog.Status.SUCCEEDED)
        .order_by("-id")
    )


def _last_rollback_from(commit: str, database: str) -> RollbackLog | None:
    return _rollbacks_from(commit, database).first()


# --- drift check ---------------------------------------------------------------------------


# "ok"; "not_saved" (the current commit has no state); "not_latest" (a newer state exists:
# an older image runs); "drifted" (the applied migrations differ from the state).
DriftStatus = Literal["ok", "not_saved", "not_latest", "drifted"]


@dataclass
class DriftReport:
    """Whether the database is what the current commit's saved state says it is."""

    status: DriftStatus
    message: str
    commit: str
    state: MigrationState | None = None
    latest: MigrationState | None = None
    missing: frozenset[MigrationKey] = frozenset()  # saved in the state, not applied now
    unexpected: frozenset[MigrationKey] = frozenset()  # applied now, not in the state

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "status": self.status,
            "message": self.message,
            "commit": self.commit,
            "state_id": self.state.pk if self.state else None,
            "latest_state_id": self.latest.pk if self.latest else None,
            "missing": [list(key) for key in sorted(self.missing)],
            "unexpected": [list(key) for key in sorted(self.unexpected)],
        }


def check_drift(
    *,
    repo_path: str | Path | None = None,
    database: str = DEFAULT_DB_ALIAS,
    commit: str | None = None,
) -> DriftReport:
    """Compare the database with the saved state of the current commit. Never writes."""
    connection = ready_connection(database)
    head = current_commit(repo_path=repo_path, commit=commit)
    states = MigrationState.objects.using(database)
    state = states.filter(commit=head.sha).first()
    latest = states.latest_state()
    name = f'commit "{head.sha}" {head.tag_list}'
    if state is None:
        return DriftReport(
            "not_saved",
            f"{name} has no saved state in database '{database}': run save_migrations_state.",
            head.sha,
            latest=latest,
        )
    if latest is not None and latest.pk != state.pk:
        return DriftReport(
            "not_latest",
            f"{name} is not the latest saved state in database '{database}' (the latest is "
            f"{describe_state(latest)}).",
            head.sha,
            state,
            latest,
        )
    applied = applied_migrations(connection)
    missing, unexpected = state.migration_set - applied, applied - state.migration_set
    if missing or unexpected:
        parts = [f"{len(missing)} saved but not applied"] if missing else []
        parts += [f"{len(unexpected)} applied but not saved"] if unexpected else []
        example = labels(sorted(missing | unexpected)[:3])
        return DriftReport(
            "drifted",
            f"Database '{database}' no longer matches the saved state of {name}: "
            f"{', '.join(parts)} (e.g. {example}).",
            head.sha,
            state,
            latest,
            frozenset(missing),
            frozenset(unexpected),
        )
    return DriftReport(
        "ok",
        f"OK: database '{database}' matches the saved state of {name} ({len(applied)} migrations).",
        head.sha,
        state,
        latest,
    )


# --- planning ------------------------------------------------------------------------------


def plan_rollback(
    *,
    tag: str | None = None,
    commit: str | None = None,
    state_id: int | None = None,
    repo_path: str | Path | None = None,
    database: str = DEFAULT_DB_ALIAS,
    with_sql: bool = False,
    count_rows: bool = True,
    deployed_commit: str | None = None,
) -> RollbackPlan:
    """The plan from the saved state of the current commit to the chosen one (default: the
    previous one). `deployed_commit` names the current commit when git cannot (current_commit)."""
    if sum(x is not None for x in (tag, commit, state_id)) > 1:
        raise RollbackError("Choose one target: a tag or a commit, not both.")
    connection = ready_connection(database)
    head = current_commit(repo_path=repo_path, commit=deployed_commit)
    repo = head.repo
    states = MigrationState.objects.using(database)
    current_state = states.filter(commit=head.sha).first()
    if current_state is None:
        rolled_back = _last_rollback_from(head.sha, database)
        if rolled_back is not None:
            raise StateNotSavedError(
                f'The current commit "{head.sha}" {head.tag_list} was already rolled back to '
                f'commit "{rolled_back.to_commit}" {rolled_back.to_tags} (log entry '
                f"{rolled_back.pk}): deploy that release, or run migrate and "
                "save_migrations_state to return to this one."
            )
        raise StateNotSavedError(
            f'The current commit "{head.sha}" {head.tag_list} has no saved state: '
            "run save_migrations_state first."
        )
    target = _resolve_target(
        current_state, repo, database, tag=tag, commit=commit, state_id=state_id
    )
    if target.unresolved:
        raise PlanRefusedError(
            f"Cannot roll back to {describe_state(target)}: it was converted from "
            "django-rollback 0.4.0 while these migration files were not on disk: "
            f"{target.unresolved_labels}; its full set of migrations is unknown."
        )
    if target.pk > current_state.pk:
        raise RollbackError(
            f"The target {describe_state(target)} was saved after the current "
            f"{describe_state(current_state)}: a rollback only goes back."
        )
    known_squashes = [s.squashes for s in states.only("squashes") if s.squashes]
    return build_plan(
        connection, current_state, target, known_squashes, with_sql=with_sql, count_rows=count_rows
    )


def _resolve_target(
    current: MigrationState,
    repo: GitRepository | None,
    database: str,
    *,
    tag: str | None,
    commit: str | None,
    state_id: int | None,
) -> MigrationState:
    """Saved rows first (commits and the tags stored with them), then git if there is one."""
    states = MigrationState.objects.using(database)
    if state_id is not None:
        found = states.filter(pk=state_id).first()
        if found is None:
            raise StateNotSavedError(f"There is no saved state with id {state_id}.")
        return found
    if tag is not None:
        tagged = states.with_tag(tag)
        if len(tagged) == 1:
            return states.get(pk=tagged[0].pk)
        sha = repo.resolve_tag(tag) if repo is not None else None
        if sha is None:
            if tagged:  # the same tag stored on several states and git cannot say which
                raise AmbiguousCommitError(
                    f'Tag "{tag}" is stored with several states: '
                    + ", ".join(s.commit[:12] for s in tagged)
                    + "; roll back by commit instead."
                )
            elsewhere = "git has no such tag" if repo is not None else "there is no git to ask"
            raise UnknownReferenceError(
                f'Unknown tag "{tag}": no saved state carries it and {elsewhere}.'
            )
        found = states.filter(commit=sha).first()
        if found is None:
            raise StateNotSavedError(
                f'Tag "{tag}" points at commit "{sha}", whose state was never saved.'
            )
        return found
    if commit is not None:
        prefix = validate_commit_prefix(commit)
        matches = list(states.with_commit_prefix(prefix).only("id", "commit")[:10])
        if len(matches) > 1:
            raise AmbiguousCommitError(
                f'Commit prefix "{prefix}" is ambiguous: it matches saved commits '
                + ", ".join(s.commit[:12] for s in matches)
                + "; give more characters."
            )
        if matches:
            return states.get(pk=matches[0].pk)
        sha = repo.resolve_commit_prefix(prefix) if repo is not None else None
        if sha is None:
            elsewhere = "no git commit" if repo is not None else "no git to ask; nothing"
            raise UnknownReferenceError(
                f'Unknown commit "{prefix}": no saved state and {elsewhere} starts with it.'
            )
        raise StateNotSavedError(f'Commit "{sha}" was never saved, so there is no state for it.')
    previous = states.before(current).first()
    if previous is None:
        raise StateNotSavedError(
            f"No state was saved before the current {describe_state(current)}: "
            "there is nothing to roll back to."
        )
    return previous
