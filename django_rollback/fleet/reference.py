"""The state a fleet goes back to, as the public schema saved it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import services
from ..exceptions import (
    AmbiguousCommitError,
    RepositoryError,
    RollbackError,
    StateNotSavedError,
    UnknownReferenceError,
)
from ..git import GitRepository, validate_commit_prefix
from ..models import MigrationState
from .targets import home_target, on_schema


def resolve_reference(
    database: str,
    *,
    tag: str | None = None,
    commit: str | None = None,
    repo_path: str | Path | None = None,
    deployed_commit: str | None = None,
) -> MigrationState:
    """The target state as the public schema saved it: a tag, a commit prefix, or the state
    saved before the current commit's. Every schema is rolled back to that state's commit."""
    if tag is not None and commit is not None:
        raise RollbackError("Choose one target: -t/--tag or -c/--commit, not both.")
    with on_schema(home_target(database)):
        services.ready_connection(database)
        states = MigrationState.objects.using(database)
        repo = _repository(repo_path) if tag or commit else None
        if tag is not None:
            tagged = states.with_tag(tag)
            if len(tagged) > 1:
                raise AmbiguousCommitError(
                    f'Tag "{tag}" is stored with several states of the public schema; '
                    "roll back by commit (-c) instead."
                )
            sha = tagged[0].commit if tagged else (repo.resolve_tag(tag) if repo else None)
            if sha is None:
                raise UnknownReferenceError(f'Unknown tag "{tag}": no saved state carries it.')
            return _state_or_refuse(states, sha, f'Tag "{tag}"')
        if commit is not None:
            prefix = validate_commit_prefix(commit)
            matches = list(states.with_commit_prefix(prefix)[:2])
            if len(matches) > 1:
                raise AmbiguousCommitError(
                    f'Commit prefix "{prefix}" is ambiguous: give more characters.'
                )
            sha = matches[0].commit if matches else None
            if sha is None and repo is not None:
                sha = repo.resolve_commit_prefix(prefix)
            if sha is None:
                raise UnknownReferenceError(f'Unknown commit "{prefix}": no saved state has it.')
            return _state_or_refuse(states, sha, f'Commit "{prefix}"')
        head = services.current_commit(
            repo_path=repo_path, commit=deployed_commit, option="--current-commit"
        )
        current = states.filter(commit=head.sha).first()
        previous = states.before(current).first() if current is not None else None
        if previous is None:
            raise StateNotSavedError(
                "The public schema (or the database) has no state saved before the current "
                f"{head.described}: "
                "name the target with -t or -c."
            )
        return previous


def _repository(repo_path: str | Path | None) -> GitRepository | None:
    """Git, when there is one to ask (images without .git have none)."""
    try:
        return services.open_repository(repo_path)
    except RepositoryError:
        return None


def _state_or_refuse(states: Any, sha: str, what: str) -> MigrationState:
    state: MigrationState | None = states.filter(commit=sha).first()
    if state is None:
        raise StateNotSavedError(
            f'{what} points at commit "{sha}", whose state the public schema never saved.'
        )
    return state
