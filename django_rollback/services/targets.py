"""Which saved state a rollback goes to (-t, -c, the previous one), and its plan."""

from __future__ import annotations

import difflib
from pathlib import Path

from django.db import (
    DEFAULT_DB_ALIAS,
)
from django.db.models import QuerySet

from .. import conf
from ..archive import enabled as archiving_enabled
from ..exceptions import (
    AmbiguousCommitError,
    PlanRefusedError,
    RollbackError,
    StateNotSavedError,
    UnknownReferenceError,
)
from ..execution import (
    describe_state,
)
from ..git import GitRepository, validate_commit_prefix
from ..models import (
    MigrationState,
    MigrationStateQuerySet,
    RollbackLog,
    describe_commit,
)
from ..planning import RollbackPlan, build_plan
from .commit import current_commit, repository_if_any
from .connection import ready_connection
from .squashes import saved_squashes


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
        rolled_back = RollbackLog.objects.using(database).rolled_back_from(head.sha).first()
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
        saved_squashes(database),
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
    repo = repository_if_any(repo_path)
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
        return _tagged(tag, states, repo)
    if commit is not None:
        return _by_commit(commit, states, repo)
    assert current is not None, "the previous state needs the current one"
    previous = states.before(current).first()
    if previous is None:
        raise StateNotSavedError(
            f"No state was saved before the current {describe_state(current)}: "
            "there is nothing to roll back to."
        )
    return previous


def _tagged(tag: str, states: MigrationStateQuerySet, repo: GitRepository | None) -> MigrationState:
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


def _by_commit(
    commit: str, states: MigrationStateQuerySet, repo: GitRepository | None
) -> MigrationState:
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
