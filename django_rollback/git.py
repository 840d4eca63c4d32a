"""The GitPython adapter: everything django_rollback asks of git."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import git

from .conf import CANDIDATE_LENGTH
from .exceptions import AmbiguousCommitError, RepositoryError, UnknownReferenceError

HEX_PREFIX = re.compile(r"^[0-9a-fA-F]{4,40}$")


def validate_commit_prefix(prefix: str) -> str:
    """Return the prefix in lower case, or refuse anything that is not 4-40 hex digits."""
    if not HEX_PREFIX.match(prefix):
        raise UnknownReferenceError(
            f'"{prefix}" is not a commit hash: give 4 to 40 hexadecimal characters.'
        )
    return prefix.lower()


@dataclass(frozen=True)
class Commit:
    sha: str
    tags: tuple[str, ...]


class GitRepository:
    """A repository found at `path` or in one of its parent directories."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            raise RepositoryError(f"Repository path {path} does not exist.")
        try:
            self.repo = git.Repo(path, search_parent_directories=True)
        except git.InvalidGitRepositoryError:
            raise RepositoryError(
                f"{path} is not inside a git repository (no .git found here or above)."
            ) from None
        except git.NoSuchPathError:
            raise RepositoryError(f"Repository path {path} does not exist.") from None

    @property
    def root(self) -> str:
        return str(self.repo.working_tree_dir or self.repo.git_dir)

    def head(self) -> Commit:
        try:
            sha = self.repo.head.commit.hexsha
        except ValueError:
            raise RepositoryError(
                f"The git repository at {self.root} has no commits yet."
            ) from None
        return Commit(sha, self.tags_at(sha))

    def tags_at(self, sha: str) -> tuple[str, ...]:
        """Lightweight and annotated tags that point at the commit, sorted."""
        try:
            out = self.repo.git.tag("--points-at", sha)
        except git.GitCommandError:  # a commit given from outside that this clone lacks
            return ()
        return tuple(sorted(line for line in out.splitlines() if line))

    def all_tags(self) -> list[str]:
        try:
            return [line for line in self.repo.git.tag("--list").splitlines() if line]
        except git.GitCommandError:
            return []

    def resolve_tag(self, tag: str) -> str | None:
        """The commit a tag points at (annotated tags are peeled), or None."""
        try:
            return str(
                self.repo.git.rev_parse("--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
            )
        except git.GitCommandError:
            return None

    def resolve_commit_prefix(self, prefix: str) -> str | None:
        """The one commit whose hash starts with `prefix`, None if none; ambiguous: error."""
        prefix = validate_commit_prefix(prefix)
        try:
            candidates = self.repo.git.rev_parse(f"--disambiguate={prefix}").split()
        except git.GitCommandError:
            return None
        commits = [c for c in candidates if self._is_commit(c)]
        if len(commits) > 1:
            listed = ", ".join(c[:CANDIDATE_LENGTH] for c in sorted(commits))
            raise AmbiguousCommitError(
                f'Commit prefix "{prefix}" is ambiguous in git: it matches {listed}.'
            )
        return commits[0] if commits else None

    def has_commit(self, sha: str) -> bool:
        """Whether this clone has the commit (a shallow or older clone may lack it)."""
        return self._is_commit(sha)

    def _is_commit(self, sha: str) -> bool:
        try:
            return str(self.repo.git.cat_file("-t", sha)) == "commit"
        except git.GitCommandError:
            return False
