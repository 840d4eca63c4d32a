"""The deployed commit: from a flag, the environment, the settings or git, with its tags."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .. import conf
from ..exceptions import (
    RepositoryError,
    UnknownReferenceError,
)
from ..git import GitRepository
from ..models import (
    describe_commit,
    short_commit,
)
from .connection import open_repository

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
    maybe_repo = repository_if_any(repo_path)
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


def repository_if_any(repo_path: str | Path | None) -> GitRepository | None:
    """The git repository when there is one; images without .git have none."""
    try:
        return open_repository(repo_path)
    except RepositoryError:
        return None
