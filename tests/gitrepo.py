"""Scratch git repositories for the tests: the one git() helper and release commits."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo: Path, *args: str | Path) -> str:
    """Run git in `repo`; its output, stripped. A failing command fails the test."""
    return subprocess.run(
        ["git", *map(str, args)], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def configure(repo: Path) -> None:
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "CI")


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    configure(path)
    return path


def write_release(repo: Path, files: dict[str, str | None]) -> None:
    """Write each file (None deletes it)."""
    for relative, content in files.items():
        target = repo / relative
        if content is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)


def commit_release(repo: Path, tag: str, *, annotated: bool = False) -> str:
    """Commit everything as release `tag`, tag it, and return the commit."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"Release {tag}")
    if annotated:
        git(repo, "tag", "-a", tag, "-m", f"Release {tag}")
    else:
        git(repo, "tag", tag)
    return git(repo, "rev-parse", "HEAD")
