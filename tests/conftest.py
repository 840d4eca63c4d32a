"""Fixtures only; the helpers they use live in plain modules (gitrepo, projects, browser)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import dbtools
from .browser import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS
from .pgbouncer import running_pgbouncer
from .projects import History, build_shop_history

# A shell without job control starts a background command with SIGINT ignored (`pytest ... &`,
# `nohup make soak &`), and every manage.py the tests start would inherit that: the Ctrl-C
# tests would hang and the life-cycle machine's SIGINT moves would test nothing. A handler is
# reset to the default in the children, so they get Python's own again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    dbs = dbtools.Databases(tmp_path_factory.mktemp("databases"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory, databases: dbtools.Databases) -> History:
    """The shop released six times, each release deployed in turn (projects.py)."""
    return build_shop_history(tmp_path_factory.mktemp("shop"), databases)


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[int]:
    """The port of a real PgBouncer in transaction-pooling mode in front of the test server
    (tests/pgbouncer.py), started once per session."""
    if dbtools.BACKEND != "postgresql":
        pytest.skip("PgBouncer fronts PostgreSQL")
    try:
        with running_pgbouncer(os.environ["DATABASE_URL"]) as port:
            yield port
    except RuntimeError as exc:
        pytest.fail(str(exc))


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
