"""The core that the commands and the admin call. Nothing here prints."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from django.core.exceptions import ImproperlyConfigured
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
from django.utils.translation import gettext as _, ngettext

from . import conf, overrides, signals
from .archive import enabled as archiving_enabled, restorable_now
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
    UnappliedMigrationsError,
    UnknownReferenceError,
    first_line,
)

# Running a plan lives in execution.py; the skins reach it through this module.
from .execution import (
    RollbackResult as RollbackResult,
    StepEvent as StepEvent,
    check_rehearsable as check_rehearsable,
    current_user as current_user,
    describe_state as describe_state,
    execute as execute,
    record_dry_run as record_dry_run,
)
from .git import GitRepository, validate_commit_prefix
from .keys import advance_past_archives
from .locks import rollback_lock
from .models import (
    MigrationKey,
    MigrationState,
    RollbackLog,
    app_count,
    describe_commit,
    short_commit,
)
from .planning import RollbackPlan, build_plan, label, labels
from .progress import LiveProgress as LiveProgress, live_progress as live_progress
from .snapshot import (
    SquashMap,
    applied_migrations,
    parse_squashes,
    squashes_on_disk,
    unapplied_on_disk,
    with_squashes,
)

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
    """The commit being deployed, and where it was learnt: "option", "environment",
    "settings" or "git". `tags_known` is false for a commit given without tags that git
    cannot tag either (no repository, or one without that commit). `tag_warning`: the tags
    given disagree with git's."""

    sha: str
    tags: tuple[str, ...]
    source: CommitSource
    tags_known: bool = True
    repo: GitRepository | None = field(default=None, compare=False, repr=False)
    tag_warning: str | None = None

    @property
    def tag_list(self) -> list[str]:
        return list(self.tags)

    @property
    def described(self) -> str:
        return describe_commit(self.sha, self.tags)


def current_commit(
    *,
    repo_path: str | Path | None = None,
    commit: str | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    replace_tags: bool = False,
    option: str = "--commit",
) -> CurrentCommit:
    """The deployed commit: from `commit` (the flag named `option`), DJANGO_ROLLBACK_COMMIT,
    DJANGO_ROLLBACK["COMMIT"], in that order, and only then from git.

    Tags: `tags` (the --tag flag) are added to git's tags of the commit, or replace them with
    `replace_tags`; otherwise DJANGO_ROLLBACK_TAGS, then the setting, replace them; otherwise
    git's."""
    sha = commit
    source: CommitSource = "option"
    if not sha:
        sha, source = os.environ.get(conf.COMMIT_ENV), "environment"
    if not sha:
        sha, source = conf.get_setting("COMMIT"), "settings"
    flag_tags = conf.split_tags(tags) if tags else None
    given_tags: tuple[str, ...] | None = None
    if flag_tags is not None and replace_tags:
        given_tags = flag_tags
    elif flag_tags is None and conf.TAGS_ENV in os.environ:
        given_tags = conf.split_tags(os.environ[conf.TAGS_ENV])
    elif flag_tags is None and conf.get_setting("TAGS") is not None:
        given_tags = conf.split_tags(conf.get_setting("TAGS"))
    if not sha:
        path = Path(repo_path or conf.repo_path())
        if not path.exists():  # a typo in -p/REPO_PATH, not a missing DJANGO_ROLLBACK_COMMIT
            raise RepositoryError(
                f"The current commit is unknown: the repository path {path} does not exist; "
                "check -p/--path or DJANGO_ROLLBACK['REPO_PATH']."
            )
        try:
            repo = open_repository(repo_path)
        except RepositoryError as exc:
            raise RepositoryError(
                f"The current commit is unknown: {exc} Set {conf.COMMIT_ENV} or pass it "
                "(save_migrations_state --commit SHA, rollback_migrations --current-commit SHA)."
            ) from None
        head = repo.head()
        found, warning = _with_flag_tags(head.sha, head.tags, flag_tags, given_tags)
        return CurrentCommit(head.sha, found, "git", repo=repo, tag_warning=warning)
    origin = {"option": option, "environment": conf.COMMIT_ENV, "settings": "the setting"}
    if not FULL_SHA.match(sha):
        raise UnknownReferenceError(
            f'{origin[source]} "{sha}" is not a full commit hash: give all 40 hexadecimal '
            "characters (git rev-parse HEAD)."
        )
    sha = sha.lower()
    maybe_repo = _repository_if_any(repo_path)
    has_it = maybe_repo is not None and maybe_repo.has_commit(sha)
    git_tags = maybe_repo.tags_at(sha) if maybe_repo is not None and has_it else None
    if git_tags is None:  # no git to ask: the tags given, if any
        known = given_tags if given_tags is not None else flag_tags
        return CurrentCommit(sha, known or (), source, known is not None, maybe_repo)
    tags_found, warning = _with_flag_tags(sha, git_tags, flag_tags, given_tags)
    return CurrentCommit(sha, tags_found, source, True, maybe_repo, warning)


def _with_flag_tags(
    sha: str,
    git_tags: tuple[str, ...],
    flag_tags: tuple[str, ...] | None,
    given_tags: tuple[str, ...] | None,
) -> tuple[tuple[str, ...], str | None]:
    """(tags, warning): git's tags plus those of --tag; a warning names the --tag values git
    does not put on the commit. Tags from the environment or settings replace git's."""
    if given_tags is not None:
        return given_tags, _tag_disagreement(sha, git_tags, given_tags)
    if not flag_tags:
        return git_tags, None
    return (
        tuple(sorted(set(git_tags) | set(flag_tags))),
        _tag_disagreement(sha, git_tags, flag_tags),
    )


def _tag_disagreement(sha: str, git_tags: tuple[str, ...], given: tuple[str, ...]) -> str | None:
    unknown = sorted(set(given) - set(git_tags))
    if not unknown:
        return None
    return (
        f"git does not tag commit {short_commit(sha)} with {', '.join(unknown)} "
        f"(git's tags there: {', '.join(git_tags) or 'none'}); saved as given."
    )


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


@dataclass(frozen=True)
class Readiness:
    """Could the state just saved be rolled back to the previous one? Planned right after
    the save, without counting rows and without changing anything."""

    target: MigrationState
    migrations: int
    apps: int
    irreversible: tuple[tuple[str, str], ...]  # (migration label, why), in plan order
    blockers: tuple[str, ...]  # every reason the plan gives, irreversible steps included
    overridden: tuple[str, ...] = ()  # steps made reversible by DJANGO_ROLLBACK["REVERSE"]
    # Every irreversible migration applied in this state that an earlier save saw arrive:
    # it blocks a rollback to any state without it. The admin list reads it from the
    # current state alone instead of planning each row.
    irreversible_applied: tuple[tuple[str, str], ...] = ()

    @property
    def possible(self) -> bool:
        return not self.blockers

    @property
    def message(self) -> str:
        """The one line a save prints."""
        target = describe_state(self.target)
        if self.possible:
            if not self.migrations:
                return f"Rollback to {target} is possible: no migrations to unapply."
            return (
                f"Rollback to {target} is possible: {self.migrations} "
                f"migration{'s' if self.migrations != 1 else ''} in {self.apps} "
                f"app{'s' if self.apps != 1 else ''}."
            )
        reasons = []
        if self.irreversible:
            reasons.append(
                "irreversible: " + ", ".join(f"{name} ({why})" for name, why in self.irreversible)
            )
        reasons += [b for b in self.blockers if not b.startswith("Irreversible: ")]
        why = "; ".join(reason.rstrip(".") for reason in reasons)
        return f"Warning: a rollback to {target} is NOT possible: {why}."

    def as_dict(self) -> dict[str, object]:
        """The JSON of `save_migrations_state --json` and of MigrationState.readiness."""
        return {
            "possible": self.possible,
            "target": {
                "id": self.target.pk,
                "commit": self.target.commit,
                "tags": list(self.target.tags),
            },
            "migrations": self.migrations,
            "apps": self.apps,
            "irreversible": [{"migration": m, "reason": r} for m, r in self.irreversible],
            "blockers": list(self.blockers),
            "overridden": list(self.overridden),
            "irreversible_applied": [
                {"migration": m, "reason": r} for m, r in self.irreversible_applied
            ],
            "message": self.message,
        }


def readiness(
    connection: BaseDatabaseWrapper, state: MigrationState, previous: MigrationState
) -> Readiness:
    """Plan the rollback from `state` (applied now) to `previous`; nothing is written."""
    plan = build_plan(
        connection, state, previous, _known_squashes(connection.alias), count_rows=False
    )
    irreversible: list[tuple[str, str]] = []
    for step in plan.steps:
        irreversible += [(step.label, why) for why in step.irreversible]
    earlier = [
        (entry["migration"], entry["reason"])
        for entry in (previous.readiness or {}).get("irreversible_applied", [])
    ]
    applied = {label(key) for key in state.migration_set}
    overridden = {step.label for step in plan.steps if step.override}
    try:
        reviewed = set(overrides.configured())
    except ImproperlyConfigured:
        reviewed = set()
    still = {
        (name, why): None
        for name, why in earlier + irreversible
        if name in applied and name not in reviewed
    }
    return Readiness(
        target=previous,
        migrations=len(plan.steps),
        apps=len(plan.app_changes),
        irreversible=tuple(irreversible),
        blockers=tuple(plan.blockers),
        overridden=tuple(sorted(overridden)),
        irreversible_applied=tuple(still),
    )


def _known_squashes(database: str) -> list[SquashMap]:
    """Squashes recorded with the saved states (their files may be gone from disk)."""
    states = MigrationState.objects.using(database)
    return [s.squashes for s in states.only("squashes") if s.squashes]


def known_squashes(database: str) -> list[SquashMap]:
    """Every squash this database can know of: the files on disk, the saved states, and
    the plans of past rollbacks (whose newer states and files may both be gone)."""
    logs = RollbackLog.objects.using(database).filter(status=RollbackLog.Status.SUCCEEDED)
    from_logs = [m for m in logs.values_list("plan__squashes", flat=True) if isinstance(m, dict)]
    return [squashes_on_disk(), *_known_squashes(database), *from_logs]


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
            advance_past_archives(connection)
            if result.previous is not None and result.is_latest:
                try:
                    result.readiness = readiness(connection, result.state, result.previous)
                except RollbackError as exc:  # the files cannot be planned: say so, keep the save
                    result.readiness = Readiness(result.previous, 0, 0, (), (str(exc),))
                stored = result.readiness.as_dict()
                if result.state.readiness != stored:
                    result.state.readiness = stored
                    result.state.save(using=database, update_fields=["readiness"])
        result.restorable = restorable_now(database)
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
        raise UnappliedMigrationsError(
            ngettext(
                "Not saved: %(count)d migration on disk is not applied in database "
                "'%(database)s' (%(names)s). Right after a rollback, deploy the release it "
                "went back to; or run migrate to return to this one (--allow-unapplied saves "
                "anyway).",
                "Not saved: %(count)d migrations on disk are not applied in database "
                "'%(database)s' (%(names)s). Right after a rollback, deploy the release it "
                "went back to; or run migrate to return to this one (--allow-unapplied saves "
                "anyway).",
                len(unapplied),
            )
            % {
                "count": len(unapplied),
                "database": database,
                "names": labels(unapplied[:5]) + (", ..." if len(unapplied) > 5 else ""),
            }
        )
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
        tag_warning=head.tag_warning,
        unapplied=tuple(unapplied),
    )


# --- listing -------------------------------------------------------------------------------


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


def migrations_text(count: int) -> str:
    return ngettext("%(count)d migration", "%(count)d migrations", count) % {"count": count}


def _standing(view: DatabaseOverview) -> Standing:
    database, head, state, latest = view.database, view.head, view.current, view.latest
    if head is None:
        return Standing("unknown_commit", view.head_error or _("The current commit is unknown."))
    name = _("The current %(commit)s") % {"commit": head.described}
    if state is None and view.rolled_back_by is not None:
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
    if state is None and latest is None:
        return Standing(
            "not_saved",
            _(
                "No migration state is saved in database '%(database)s' yet: run "
                "save_migrations_state after migrate."
            )
            % {"database": database},
        )
    if state is None:
        return Standing(
            "not_saved",
            _("%(name)s has no saved state in database '%(database)s': run save_migrations_state.")
            % {"name": name, "database": database},
        )
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
                "database": database,
                "name": head.described,
                "parts": ", ".join(parts),
                "example": labels(sorted(missing | unexpected)[:3]),
            },
            frozenset(missing),
            frozenset(unexpected),
        )
    return Standing(
        "ok",
        _("OK: database '%(database)s' matches the saved state of %(name)s (%(migrations)s).")
        % {
            "database": database,
            "name": head.described,
            "migrations": migrations_text(len(view.applied)),
        },
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


@dataclass
class DriftReport:
    """Whether the database is what the current commit's saved state says it is: the
    Standing of the database (status and message as the admin shows them) for --check."""

    status: StandingStatus
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
    ready_connection(database)
    head = current_commit(repo_path=repo_path, commit=commit, option="--current-commit")
    view = overview(repo_path=repo_path, database=database, head=head)
    standing = view.standing
    return DriftReport(
        standing.status,
        standing.message,
        head.sha,
        view.current,
        view.latest,
        standing.missing,
        standing.unexpected,
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
    archive: bool | None = None,
    exact_counts: bool = False,
) -> RollbackPlan:
    """The plan from the saved state of the current commit to the chosen one (default: the
    previous one). `deployed_commit` names the current commit when git cannot (current_commit)."""
    if sum(x is not None for x in (tag, commit, state_id)) > 1:
        raise RollbackError("Choose one target: a tag or a commit, not both.")
    connection = ready_connection(database)
    head = current_commit(repo_path=repo_path, commit=deployed_commit, option="--current-commit")
    repo = head.repo
    states = MigrationState.objects.using(database)
    current_state = states.filter(commit=head.sha).first()
    if current_state is None:
        rolled_back = _last_rollback_from(head.sha, database)
        if rolled_back is not None:
            raise StateNotSavedError(
                f"The current {head.described} was already rolled back to "
                f"{describe_commit(rolled_back.to_commit, rolled_back.to_tags)} (log entry "
                f"{rolled_back.pk}): deploy that release, or run migrate and "
                "save_migrations_state to return to this one."
            )
        raise StateNotSavedError(
            f"The current {head.described} has no saved state: run save_migrations_state first."
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
    return build_plan(
        connection,
        current_state,
        target,
        _known_squashes(database),
        with_sql=with_sql,
        count_rows=count_rows,
        archive=archiving_enabled(archive),
        exact_counts=exact_counts,
    )


def _nearest_tags(tag: str, states: QuerySet[MigrationState], repo: GitRepository | None) -> str:
    """' Nearest known tags: ...' from the saved states and git, or the known ones when
    none is close (a typo is the usual cause of an unknown tag)."""
    known = {t for state in states.only("tags") for t in (state.tags or [])}
    if repo is not None:
        known |= set(repo.all_tags())
    if not known:
        return " No tag is known at all: roll back by commit (-c) instead."
    nearest = difflib.get_close_matches(tag, sorted(known), n=3, cutoff=0.6)
    if nearest:
        return f" Nearest known tags: {', '.join(nearest)}."
    listed = sorted(known, reverse=True)
    more = ", ..." if len(listed) > 5 else ""
    return f" Known tags: {', '.join(listed[:5])}{more}."


def resolve_state(
    ref: str, *, repo_path: str | Path | None = None, database: str = DEFAULT_DB_ALIAS
) -> MigrationState:
    """The saved state that REF names, the way -t and -c name one: a tag first (saved rows,
    then git), else a commit prefix. Used by `rollback_migrations --diff REF1 REF2`."""
    ready_connection(database)
    repo = _repository_if_any(repo_path)
    try:
        return _resolve_target(None, repo, database, tag=ref, commit=None, state_id=None)
    except UnknownReferenceError as as_tag:
        try:
            validate_commit_prefix(ref)
        except UnknownReferenceError:
            raise as_tag from None  # not hexadecimal: the tag's message, with its suggestions
        try:
            return _resolve_target(None, repo, database, tag=None, commit=ref, state_id=None)
        except UnknownReferenceError:
            raise UnknownReferenceError(
                f'Unknown reference "{ref}": no saved state or git tag is called so, and no '
                "saved state or git commit starts with it."
            ) from None


def _resolve_target(
    current: MigrationState | None,
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
                    + ", ".join(s.commit[: conf.CANDIDATE_LENGTH] for s in tagged)
                    + "; roll back by commit instead."
                )
            elsewhere = "git has no such tag" if repo is not None else "there is no git to ask"
            raise UnknownReferenceError(
                f'Unknown tag "{tag}": no saved state carries it and {elsewhere}.'
                + _nearest_tags(tag, states, repo)
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
                + ", ".join(s.commit[: conf.CANDIDATE_LENGTH] for s in matches)
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
    assert current is not None, "the previous state needs the current one"
    previous = states.before(current).first()
    if previous is None:
        raise StateNotSavedError(
            f"No state was saved before the current {describe_state(current)}: "
            "there is nothing to roll back to."
        )
    return previous
