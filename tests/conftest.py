from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import dbtools
from .shop import release_files

ANNOTATED = {"v1.1.0", "v2.0.0"}  # the others are lightweight tags


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "ci@example.com")
    git(path, "config", "user.name", "CI")
    return path


def write_release(repo: Path, files: dict[str, str | None]) -> None:
    for relative, content in files.items():
        target = repo / relative
        if content is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)


def commit_release(repo: Path, tag: str, *, annotated: bool = False) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"Release {tag}")
    if annotated:
        git(repo, "tag", "-a", tag, "-m", f"Release {tag}")
    else:
        git(repo, "tag", tag)
    return git(repo, "rev-parse", "HEAD")


@dataclass
class Project:
    """A checkout of the shop project and the database it is deployed on."""

    path: Path
    url: str

    def manage(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.path,
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
            subprocess.run(["git", "clone", "-q", str(self.repo), str(own_checkout)], check=True)
            git(own_checkout, "checkout", "-q", "--detach", tag)
            git(own_checkout, "config", "user.email", "ci@example.com")
            git(own_checkout, "config", "user.name", "CI")
            path = own_checkout
        return Project(path, url)


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


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    dbs = dbtools.Databases(tmp_path_factory.mktemp("databases"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory, databases: dbtools.Databases) -> History:
    """The shop released six times, each release deployed in turn on one database; a
    template copy of the database and a checkout are kept for every release."""
    root = tmp_path_factory.mktemp("shop")
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


@pytest.fixture
def panel(transactional_db, tmp_path: Path, settings):  # type: ignore[no-untyped-def]
    """The panel apps released four times (v1.0.0 … v2.0.0) in the test database, HEAD at
    v2.0.0; the admin reads the scratch repository through DJANGO_ROLLBACK["REPO_PATH"]."""
    from .panel import history

    repo = tmp_path / "repo"
    settings.DJANGO_ROLLBACK = {"REPO_PATH": str(repo)}
    try:
        yield history.build(repo)
    finally:
        history.restore()


# --- browser tests -------------------------------------------------------------------------

# Playwright's sync API runs an event loop in the test thread; the tests still read the
# database from that thread, which Django would otherwise refuse.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):  # type: ignore[no-untyped-def]
    """Debian's Chromium: `playwright install` cannot download a browser here."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_FLAGS}


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def browser_page(page, request):  # type: ignore[no-untyped-def]
    """The Playwright page; on failure its screenshot and HTML are kept in test-artifacts/."""
    page.set_default_timeout(15_000)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        folder = ARTIFACTS / "failures" / request.node.name
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / "page.png"), full_page=True)
        (folder / "page.html").write_text(page.content())


# --- rollbacks started from the admin -------------------------------------------------------


@pytest.fixture
def inline_runner(monkeypatch):  # type: ignore[no-untyped-def]
    """Run the admin's rollbacks inside the request instead of in a process of their own: a
    separate process would not see the test database. (tests/test_background.py starts real
    runners behind a real gunicorn.)"""
    from django_rollback import background

    def run_now(log):  # type: ignore[no-untyped-def]
        background.run_queued(log.pk, log._state.db)
        return None

    monkeypatch.setattr(background, "launch", run_now)
