"""In-process tests of the git adapter, the models and the commands through call_command."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections import defaultdict
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_rollback.exceptions import AmbiguousCommitError, RepositoryError, UnknownReferenceError
from django_rollback.git import GitRepository
from django_rollback.models import MigrationState

from .gitrepo import git, init_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = init_repo(tmp_path / "repo")
    (path / "sub" / "dir").mkdir(parents=True)
    (path / "sub" / "dir" / "file.txt").write_text("one")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    git(path, "tag", "light")
    git(path, "tag", "-a", "annotated", "-m", "an annotated tag")
    return path


def test_head_and_both_kinds_of_tags_from_a_subdirectory(repo: Path) -> None:
    head = GitRepository(repo / "sub" / "dir").head()
    assert head.sha == git(repo, "rev-parse", "HEAD")
    assert head.tags == ("annotated", "light")


def test_resolve_tags_and_prefixes(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    adapter = GitRepository(repo)
    assert adapter.resolve_tag("annotated") == sha  # peeled to the commit, not the tag object
    assert adapter.resolve_tag("light") == sha
    assert adapter.resolve_tag("missing") is None
    assert adapter.resolve_commit_prefix(sha[:4].upper()) == sha
    other = ("1" if sha[0] == "0" else "0") + sha[1:8]
    assert adapter.resolve_commit_prefix(other) is None
    with pytest.raises(UnknownReferenceError, match="not a commit hash"):
        adapter.resolve_commit_prefix("HEAD")


def test_ambiguous_prefix_lists_every_candidate(tmp_path: Path) -> None:
    path = init_repo(tmp_path / "many")
    stream = []
    for number in range(1, 1001):  # deterministic commits: with 1000, 4-digit prefixes collide
        stream.append(f"commit refs/heads/main\nmark :{number}\n")
        stream.append(f"committer CI <ci@example.com> {1700000000 + number} +0000\n")
        message = f"commit {number}"
        stream.append(f"data {len(message)}\n{message}\n")
        if number > 1:
            stream.append(f"from :{number - 1}\n")
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=path, input="".join(stream), text=True, check=True
    )
    by_prefix: dict[str, list[str]] = defaultdict(list)
    for sha in git(path, "rev-list", "main").split():
        by_prefix[sha[:4]].append(sha)
    prefix, shas = next((p, s) for p, s in sorted(by_prefix.items()) if len(s) > 1)
    with pytest.raises(AmbiguousCommitError) as error:
        GitRepository(path).resolve_commit_prefix(prefix)
    for sha in shas:
        assert sha[:12] in str(error.value)


def test_repository_errors(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="does not exist"):
        GitRepository(tmp_path / "nope")
    with pytest.raises(RepositoryError, match="not inside a git repository"):
        GitRepository(tmp_path)
    with pytest.raises(RepositoryError, match="no commits yet"):
        GitRepository(init_repo(tmp_path / "empty")).head()


@pytest.mark.django_db
def test_latest_is_the_last_saved_row_whatever_the_clocks_say() -> None:
    now = timezone.now()
    # The second container's clock is an hour behind the first one's.
    first = MigrationState.objects.create(commit="a" * 40, saved_at=now)
    second = MigrationState.objects.create(commit="b" * 40, saved_at=now - dt.timedelta(hours=1))
    assert MigrationState.objects.latest_state() == second
    assert list(MigrationState.objects.before(second)) == [first]
    assert list(MigrationState.objects.newer_than(first)) == [second]
    assert MigrationState.objects.with_tag("v1") == []


@pytest.mark.django_db
def test_save_command_in_process(repo: Path) -> None:
    out = StringIO()
    call_command("save_migrations_state", path=str(repo), stdout=out)
    state = MigrationState.objects.get()
    assert state.commit == git(repo, "rev-parse", "HEAD")
    assert state.tags == ["annotated", "light"]
    assert ("django_rollback", "0001_initial") in state.migration_set
    assert "State successfully created" in out.getvalue()
    with pytest.raises(CommandError, match="nothing to roll back to"):
        call_command("rollback_migrations", path=str(repo), stdout=StringIO())


@pytest.mark.django_db
def test_admin_lists_states_read_only(admin_client) -> None:  # type: ignore[no-untyped-def]
    MigrationState.objects.create(commit="c" * 40, tags=["v1.0.0"], migrations=[["a", "0001"]])
    response = admin_client.get("/admin/django_rollback/migrationstate/")
    assert response.status_code == 200
    assert b"cccccccc" in response.content and b"v1.0.0" in response.content
    assert admin_client.get("/admin/django_rollback/migrationstate/add/").status_code == 403
    assert admin_client.get("/admin/django_rollback/rollbacklog/").status_code == 200


def test_a_tenant_is_odd_only_among_the_tenants_of_its_type() -> None:
    from django_rollback.fleet import Target, TargetRun
    from django_rollback.fleet.plans import _mark_odd

    usual = frozenset({("notes", "0001_initial"), ("notes", "0002_body")})
    short = frozenset({("notes", "0001_initial")})
    runs = [
        TargetRun(Target("default", name, "tenant", kind), "planned", applied=applied)
        for name, kind, applied in [
            ("a1", "shop", usual),
            ("a2", "shop", usual),
            ("a3", "shop", short),  # odd among the shops
            ("b1", "blog", short),  # the blogs all stand here: none is odd
            ("b2", "blog", short),
        ]
    ]
    _mark_odd(runs)
    assert [run.target.schema for run in runs if run.odd] == ["a3"]
    assert "not applied: notes.0002_body" in runs[2].message
