"""The admin's rollback behind a real gunicorn with a 5-second worker timeout, on a project
whose rollback has a step that takes 15 seconds: the confirmation returns at once, the live
page and its JSON show the rollback going on (even when the web workers are killed meanwhile),
and it ends "succeeded" with the target release's schema. A runner killed mid-run ends
"interrupted" with the database unchanged.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import dbtools
from .gitrepo import commit_release, init_repo, write_release
from .projects import Project
from .shop import ID, MANAGE, app_files, migration

pytestmark = pytest.mark.skipif(
    dbtools.BACKEND == "mysql",
    reason="MySQL runs step by step: a killed runner leaves the steps before it unapplied",
)

SLOW_SECONDS = 15  # the slow step; gunicorn kills a request after 5
TIMEOUT = 5
LOG_LIST = "/admin/django_rollback/rollbacklog/"

SETTINGS = """\
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
SECRET_KEY = "shelf"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["127.0.0.1"]
DATABASES = {"default": env.db("DATABASE_URL")}
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rollback",
    "shelf",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "shop.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_ROLLBACK = {"REPO_PATH": BASE_DIR}
"""
URLS = """\
from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
"""
WSGI = """\
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_wsgi_application()
"""
SLOW_CODE = f"""
import time


def slowly_back(apps, schema_editor):
    time.sleep({SLOW_SECONDS})  # a long data migration's reverse
"""


def releases() -> list[tuple[str, dict[str, str | None]]]:
    """v1: a table; v2: three migrations whose middle one takes SLOW_SECONDS to unapply."""
    v1: dict[str, str | None] = {
        "manage.py": MANAGE,
        "shop/__init__.py": "",
        "shop/settings.py": SETTINGS,
        "shop/urls.py": URLS,
        "shop/wsgi.py": WSGI,
        **app_files("shelf"),
        "shelf/migrations/__init__.py": "",
        "shelf/migrations/0001_initial.py": migration(
            [],
            f'        migrations.CreateModel(name="Book", fields=[{ID}, ("title", '
            "models.CharField(max_length=50))]),\n",
        ),
    }
    v2: dict[str, str | None] = {
        "shelf/migrations/0002_book_isbn.py": migration(
            [("shelf", "0001_initial")],
            '        migrations.AddField(model_name="book", name="isbn", '
            "field=models.CharField(max_length=13, null=True)),\n",
        ),
        "shelf/migrations/0003_slow.py": migration(
            [("shelf", "0002_book_isbn")],
            "        migrations.RunPython(migrations.RunPython.noop, slowly_back),\n",
            SLOW_CODE,
        ),
        "shelf/migrations/0004_book_pages.py": migration(
            [("shelf", "0003_slow")],
            '        migrations.AddField(model_name="book", name="pages", '
            "field=models.IntegerField(null=True)),\n",
        ),
    }
    return [("v1", v1), ("v2", v2)]


@dataclass
class Deployed:
    path: Path
    template_url: str  # the database as v2 left it
    v1_schema: list[str]
    shas: dict[str, str]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, databases: dbtools.Databases) -> Deployed:
    repo = init_repo(tmp_path_factory.mktemp("gunicorn") / "repo")
    project = Project(repo, databases.new_url("gunicorn"))
    shas, v1_schema = {}, []
    for tag, files in releases():
        write_release(repo, files)
        shas[tag] = commit_release(repo, tag)
        project.deploy()
        if tag == "v1":
            v1_schema = dbtools.schema(project.url)
    result = project.manage(
        "createsuperuser",
        "--no-input",
        "--username",
        "admin",
        "--email",
        "a@example.com",
        env={"DJANGO_SUPERUSER_PASSWORD": "pw"},
    )
    assert result.returncode == 0, result.stderr
    return Deployed(repo, project.url, v1_schema, shas)


class Gunicorn:
    """gunicorn serving the project on a free 127.0.0.1 port, and a logged-in admin session."""

    def __init__(self, path: Path, url: str, log: Path) -> None:
        self.url, self.log = url, log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "shop.wsgi:application",
                "--bind",
                "127.0.0.1:0",  # the kernel picks a free port; read it from the log
                "--workers",
                "2",
                "--timeout",
                str(TIMEOUT),
                "--chdir",
                str(path),
                "--error-logfile",
                str(log),
            ],
            cwd=path,
            env={
                **os.environ,
                "DATABASE_URL": url,
                "DJANGO_SETTINGS_MODULE": "shop.settings",
                "PYTHONDONTWRITEBYTECODE": "1",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = self._listening_at()
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), NoRedirect()
        )

    def _listening_at(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", self.log_text())
            if found:
                return found.group(1)
            assert self.process.poll() is None, self.log_text()
            time.sleep(0.1)
        raise AssertionError("gunicorn did not start:\n" + self.log_text())

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def workers(self) -> list[int]:
        """The worker processes: the master's children."""
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    children.append(int(entry.name))
        return children

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def request(self, path: str, data: dict[str, str] | None = None) -> tuple[int, dict, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body)
        if data is not None:
            request.add_header("Referer", self.base + path)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def csrf(self) -> str:
        return next(c.value for c in self.cookies if c.name == "csrftoken")

    def log_in(self) -> None:
        self.request("/admin/login/")
        status, headers, _ = self.request(
            "/admin/login/?next=/admin/",
            {
                "username": "admin",
                "password": "pw",
                "csrfmiddlewaretoken": self.csrf(),
                "next": "/admin/",
            },
        )
        assert status == 302, (status, headers)

    def progress(self, log_path: str) -> dict:
        status, _, body = self.request(log_path.replace("/change/", "/progress/"))
        assert status == 200, body
        return json.loads(body)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # the tests look at each redirect themselves


@pytest.fixture
def server(deployed: Deployed, databases: dbtools.Databases, tmp_path: Path):  # type: ignore[no-untyped-def]
    url = databases.clone(deployed.template_url, "gunicorn_run")
    gunicorn = Gunicorn(deployed.path, url, tmp_path / "gunicorn.log")
    try:
        gunicorn.log_in()
        yield gunicorn
    finally:
        gunicorn.stop()


def start_rollback(server: Gunicorn, deployed: Deployed) -> tuple[str, float]:
    """Preview the rollback to v1 and confirm it; the entry's page and the POST's duration."""
    [(state_id,)] = dbtools.query(
        server.url,
        f"SELECT id FROM django_rollback_migrationstate WHERE \"commit\" = '{deployed.shas['v1']}'",
    )
    preview = f"/admin/django_rollback/migrationstate/{state_id}/rollback/"
    status, _, page = server.request(preview)
    assert status == 200 and "shelf.0003_slow" in page, page
    found = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page)
    assert found, page
    began = time.perf_counter()
    status, headers, body = server.request(
        preview,
        {"confirm": "1", "fingerprint": found.group(1), "csrfmiddlewaretoken": server.csrf()},
    )
    seconds = time.perf_counter() - began
    assert status == 302, (status, body)
    location = headers["Location"]
    assert re.fullmatch(re.escape(LOG_LIST) + r"\d+/change/", location), location
    return location, seconds


def wait_for(server: Gunicorn, log_path: str, until, what: str, timeout: float = 120) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        data = server.progress(log_path)
        seen.append((data["status"], data["steps_done"], data["running_step"]))
        if until(data):
            return data
        time.sleep(0.2)
    raise AssertionError(f"never {what}: {seen[-20:]}\n{server.log_text()}")


def report(line: str) -> None:
    """Measurements go to a file for the README and the report (never asserted on)."""
    folder = Path(__file__).resolve().parent.parent / "test-artifacts"
    folder.mkdir(exist_ok=True)
    with open(folder / "background-timings.txt", "a") as handle:
        handle.write(f"{dbtools.BACKEND}: {line}\n")


def test_admin_rollback_outlives_the_web_timeout_and_shows_its_progress(
    server: Gunicorn, deployed: Deployed
) -> None:
    log_path, post_seconds = start_rollback(server, deployed)
    report(f"admin confirm POST answered in {post_seconds * 1000:.0f} ms")

    running = wait_for(
        server,
        log_path,
        lambda d: d["running_step"] == "shelf.0003_slow",
        "showed the slow step running",
    )
    report(f"progress JSON while the slow step runs: {json.dumps(running)}")
    assert running["status"] == "running" and running["active"] is True
    assert (running["steps_done"], running["steps_total"]) == (1, 3)
    assert "Unapplying shelf.0004_book_pages... OK" in running["output"]
    status, _, page = server.request(log_path)  # the page without JavaScript
    assert status == 200
    assert 'id="rollback-live-steps">1 of 3 done<' in page
    assert '<code id="rollback-live-running">shelf.0003_slow</code>' in page
    assert '<meta http-equiv="refresh"' in page

    # The web workers die meanwhile (as gunicorn kills a worker after its timeout): the
    # rollback runs in a process of its own and goes on.
    for pid in server.workers():
        os.kill(pid, signal.SIGKILL)
    later = wait_for(
        server,
        log_path,
        lambda d: (d["step_seconds"] or 0) > TIMEOUT + 1 or not d["active"],
        "kept running past the web timeout",
    )
    assert later["status"] == "running" and later["running_step"] == "shelf.0003_slow"

    done = wait_for(server, log_path, lambda d: not d["active"], "finished")
    assert done["status"] == "succeeded", done
    assert (done["steps_done"], done["steps_total"], done["running_step"]) == (3, 3, None)
    assert done["seconds"] >= SLOW_SECONDS
    report(f"rollback with a {SLOW_SECONDS} s step: {done['seconds']} s, status {done['status']}")
    assert dbtools.schema(server.url) == deployed.v1_schema
    assert [row[0] for row in dbtools.logs(server.url) or []] == ["succeeded"]
    status, _, page = server.request(log_path)
    assert "rollback-status-succeeded" in page and "http-equiv" not in page
    assert "WORKER TIMEOUT" not in server.log_text()  # no request outlived the timeout


def test_a_runner_killed_mid_run_leaves_the_database_unchanged_and_the_entry_interrupted(
    server: Gunicorn, deployed: Deployed
) -> None:
    before = dbtools.everything(server.url)
    log_path, _ = start_rollback(server, deployed)
    wait_for(
        server, log_path, lambda d: d["running_step"] == "shelf.0003_slow", "reached the slow step"
    )
    log_id = int(log_path.rstrip("/").split("/")[-2])
    [(pid,)] = dbtools.query(
        server.url, f"SELECT pid FROM django_rollback_rollbacklog WHERE id = {log_id}"
    )
    os.kill(pid, signal.SIGKILL)

    ended = wait_for(server, log_path, lambda d: not d["active"], "noticed the dead runner", 60)
    assert ended["status"] == "interrupted", ended
    assert "stopped at shelf.0003_slow" in ended["error"]
    assert "the database is unchanged" in ended["error"]
    assert ended["steps_done"] == 1  # where it was when it died
    status, _, page = server.request(log_path)
    assert "rollback-status-interrupted" in page and "http-equiv" not in page

    after = dbtools.everything(server.url)
    assert after.pop("logs") == [
        ("interrupted", deployed.shas["v2"], deployed.shas["v1"], ended["error"])
    ]
    before.pop("logs")
    assert after == before  # schema, applied migrations, rows and saved states
