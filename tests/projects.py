"""The shop deployed for real: a checkout plus a database, driven through manage.py in a
subprocess as a container entrypoint would, and the release history the tests roll back."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import dbtools
from .gitrepo import commit_release, configure, git, init_repo, write_release
from .shop import release_files

ANNOTATED = {"v1.1.0", "v2.0.0"}  # the others are lightweight tags


@dataclass
class Project:
    """A checkout of the shop project and the database it is deployed on."""

    path: Path
    url: str

    def manage(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.path,
            stdin=subprocess.DEVNULL,  # never a terminal: a real rollback would ask otherwise
            capture_output=True,
            text=True,
            timeout=300,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "shop.settings",
                "DATABASE_URL": self.url,
                "PYTHONDONTWRITEBYTECODE": "1",
                **(env or {}),
            },
        )

    def ok(self, *args: str) -> str:
        result = self.manage(*args)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def deploy(self) -> None:
        """What a container entrypoint does."""
        self.ok("migrate", "--no-input")
        self.ok("save_migrations_state")


@dataclass
class Release:
    tag: str
    sha: str
    template_url: str
    worktree: Path
    schema: list[str]
    applied: set[tuple[str, str]]
    rows: dict[str, int]


@dataclass
class History:
    repo: Path
    databases: dbtools.Databases
    releases: dict[str, Release] = field(default_factory=dict)
    worktrees: Path | None = None

    def deploy(self, tag: str, *, own_checkout: Path | None = None) -> Project:
        """A fresh database in the state the release `tag` left it, and its checkout.

        With own_checkout, the checkout is a clone of its own (tags included) that the test
        may change."""
        release = self.releases[tag]
        url = self.databases.clone(release.template_url, tag.replace(".", "_"))
        path = release.worktree
        if own_checkout is not None:
            git(self.repo, "clone", "-q", str(self.repo), str(own_checkout))
            git(own_checkout, "checkout", "-q", "--detach", tag)
            configure(own_checkout)
            path = own_checkout
        return Project(path, url)


def build_shop_history(root: Path, databases: dbtools.Databases) -> History:
    """The shop released six times, each release deployed in turn on one database; a
    template copy of the database and a checkout are kept for every release."""
    repo = init_repo(root / "repo")
    history = History(repo, databases)
    deploy_url = databases.new_url("deploy")
    for tag, files in release_files():
        write_release(repo, files)
        sha = commit_release(repo, tag, annotated=tag in ANNOTATED)
        Project(repo, deploy_url).deploy()
        worktree = root / f"checkout-{tag}"
        git(repo, "worktree", "add", "-q", "--detach", str(worktree), tag)
        history.releases[tag] = Release(
            tag=tag,
            sha=sha,
            template_url=databases.clone(deploy_url, "tmpl"),
            worktree=worktree,
            schema=dbtools.schema(deploy_url),
            applied=dbtools.applied(deploy_url),
            rows=dbtools.row_counts(deploy_url),
        )
    return history


def make_project(
    root: Path, databases: dbtools.Databases, releases: list[tuple[str, dict[str, str | None]]]
) -> tuple[Project, dict[str, str]]:
    """A project of its own, each release committed, tagged and deployed in turn."""
    repo = init_repo(root)
    project = Project(repo, databases.new_url("own"))
    shas = {}
    for tag, files in releases:
        write_release(repo, files)
        shas[tag] = commit_release(repo, tag)
        project.deploy()
    return project, shas


def assert_refused(project: Project, *args: str, says: str) -> subprocess.CompletedProcess:
    """A refusal: non-zero exit, one line on stderr, no traceback, nothing changed."""
    before = dbtools.everything(project.url)
    result = project.manage(*args)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert says in lines[0], lines[0]
    assert dbtools.everything(project.url) == before
    return result
