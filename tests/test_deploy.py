"""Deploying for real: images without .git, many pods at once, the drift check and JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from django_rollback import services
from django_rollback.exceptions import RollbackError

from . import dbtools
from .gitrepo import commit_release, git, init_repo, write_release
from .projects import History, Project, assert_refused, make_project
from .shop import migration, shelf_releases, warehouse_releases

# Project.manage passes the environment on: make sure these come only from the tests.
for name in ("DJANGO_ROLLBACK_COMMIT", "DJANGO_ROLLBACK_TAGS"):
    os.environ.pop(name, None)


def image_of(shop: History, tag: str, folder: Path, url: str) -> Project:
    """The checkout of a release copied the way a Docker build copies it: without .git."""
    shutil.copytree(
        shop.releases[tag].worktree, folder, ignore=shutil.ignore_patterns(".git", "__pycache__")
    )
    assert not (folder / ".git").exists()
    return Project(folder, url)


def manage_env(project: Project, env: dict[str, str], *args: str) -> str:
    result = project.manage(*args, env=env)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


# --- no .git in the image ------------------------------------------------------------------


def test_images_without_git_save_by_flag_and_env_and_roll_back_by_tag(
    shop: History, databases: dbtools.Databases, tmp_path: Path
) -> None:
    url = databases.new_url("nogit")
    v100 = image_of(shop, "v1.0.0", tmp_path / "img-v1.0.0", url)
    v110 = image_of(shop, "v1.1.0", tmp_path / "img-v1.1.0", url)
    sha100, sha110 = shop.releases["v1.0.0"].sha, shop.releases["v1.1.0"].sha

    v100.ok("migrate", "--no-input")
    out = v100.ok("save_migrations_state", "--commit", sha100.upper(), "--tag", "v1.0.0")
    assert f"State successfully created for commit \"{sha100}\" ['v1.0.0']." in out

    env = {"DJANGO_ROLLBACK_COMMIT": sha110, "DJANGO_ROLLBACK_TAGS": "v1.1.0, release-2"}
    manage_env(v110, env, "migrate", "--no-input")
    out = manage_env(v110, env, "save_migrations_state")
    assert f"State successfully created for commit \"{sha110}\" ['release-2', 'v1.1.0']." in out
    # The flag wins over the environment.
    other = "f" * 40
    assert f'commit "{other}"' in manage_env(v110, env, "save_migrations_state", "--commit", other)
    dbtools.execute(url, f"DELETE FROM django_rollback_migrationstate WHERE \"commit\" = '{other}'")

    listing = json.loads(manage_env(v110, env, "rollback_migrations", "--list", "--json"))
    assert [(s["commit"], s["tags"], s["current"]) for s in listing["states"]] == [
        (sha110, ["release-2", "v1.1.0"], True),
        (sha100, ["v1.0.0"], False),
    ]
    assert listing["current_commit"] == sha110

    # Unknown tags are looked up in the saved states alone, and say there is no git.
    result = v110.manage("rollback_migrations", "-t", "v0.9", env=env)
    assert result.returncode == 1
    assert 'Unknown tag "v0.9": no saved state carries it and there is no git to ask.' in (
        result.stderr
    )

    out = manage_env(v110, env, "rollback_migrations", "-t", "v1.0.0")
    assert "Rollback successfully finished" in out
    release = shop.releases["v1.0.0"]
    assert dbtools.schema(url) == release.schema
    assert dbtools.applied(url) == release.applied
    assert dbtools.row_counts(url) == release.rows
    assert [c for c, _ in dbtools.saved_states(url)] == [sha100]


def test_rollback_by_prefix_with_current_commit_flag_and_no_git(
    shop: History, tmp_path: Path
) -> None:
    deployed = shop.deploy("v1.3.0")  # states saved from git, as before the move to images
    image = image_of(shop, "v1.3.0", tmp_path / "img", deployed.url)
    sha = shop.releases["v1.3.0"].sha
    target = shop.releases["v1.2.0"]
    out = image.ok("rollback_migrations", "--current-commit", sha, "-c", target.sha[:7])
    assert "Rollback successfully finished" in out
    assert dbtools.schema(deployed.url) == target.schema
    assert dbtools.applied(deployed.url) == target.applied


def test_without_git_or_commit_the_refusal_says_what_to_set(shop: History, tmp_path: Path) -> None:
    deployed = shop.deploy("v1.1.0")
    image = image_of(shop, "v1.1.0", tmp_path / "img", deployed.url)
    for command in ("save_migrations_state", "rollback_migrations"):
        result = assert_refused(image, command, says="The current commit is unknown")
        assert "DJANGO_ROLLBACK_COMMIT" in result.stderr and "--commit" in result.stderr
    assert_refused(image, "save_migrations_state", "--commit", "abc123", says="not a full commit")
    result = image.manage("rollback_migrations", "--list")
    # Issue 10: the sentence is said once ("The current commit is unknown: ..."), not doubled.
    assert result.returncode == 0 and "the current commit is unknown" in result.stdout.lower()


def test_commit_and_tags_from_settings_come_after_the_environment(
    shop: History, tmp_path: Path
) -> None:
    deployed = shop.deploy("v1.1.0")
    image = image_of(shop, "v1.1.0", tmp_path / "img", deployed.url)
    settings = image.path / "shop" / "settings.py"
    from_settings, from_env = "1" * 40, "2" * 40
    settings.write_text(
        settings.read_text()
        + f'\nDJANGO_ROLLBACK["COMMIT"] = "{from_settings}"\nDJANGO_ROLLBACK["TAGS"] = ["s1"]\n'
    )
    out = image.ok("save_migrations_state")
    assert f"commit \"{from_settings}\" ['s1']" in out
    out = manage_env(image, {"DJANGO_ROLLBACK_COMMIT": from_env}, "save_migrations_state")
    assert f"commit \"{from_env}\" ['s1']" in out  # the commit from the env, tags from settings
    out = manage_env(image, {"DJANGO_ROLLBACK_TAGS": ""}, "save_migrations_state", "--tag", "x")
    assert f"commit \"{from_settings}\" ['x']" in out


def test_saving_again_without_tags_keeps_the_stored_ones(shop: History, tmp_path: Path) -> None:
    deployed = shop.deploy("v1.1.0")
    image = image_of(shop, "v1.1.0", tmp_path / "img", deployed.url)
    sha = shop.releases["v1.1.0"].sha
    image.ok("save_migrations_state", "--commit", sha, "--tag", "hotfix")
    out = image.ok("save_migrations_state", "--commit", sha)  # no tags given, no git to ask
    assert f"State for commit \"{sha}\" ['hotfix'] was already saved." in out
    assert "refreshed" not in out
    out = manage_env(image, {"DJANGO_ROLLBACK_TAGS": ""}, "save_migrations_state", "--commit", sha)
    # an explicit empty list clears (issue 10: never a literal "[]")
    assert f'Tags of commit "{sha}" (no tags) refreshed.' in out


def test_commit_given_with_git_present_still_gets_its_tags_from_git(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    sha = shop.releases["v1.0.0"].sha
    out = project.ok("save_migrations_state", "--commit", sha)  # an older commit, re-saved
    assert f"commit \"{sha}\" ['v1.0.0']" in out


# --- many pods at once ---------------------------------------------------------------------


def test_sixteen_pods_saving_the_same_commit_leave_one_state(shop: History) -> None:
    v100 = shop.deploy("v1.0.0")
    pod = Project(shop.releases["v1.1.0"].worktree, v100.url)
    pod.ok("migrate", "--no-input")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DATABASE_URL": pod.url,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    pods = [
        subprocess.Popen(
            [sys.executable, "manage.py", "save_migrations_state"],
            cwd=pod.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    outputs = [(p.wait(timeout=300), *p.communicate()) for p in pods]
    assert [code for code, _, _ in outputs] == [0] * 16, outputs
    created = [out for _, out, _ in outputs if "State successfully created" in out]
    assert len(created) == 1
    assert all("was already saved" in out for _, out, _ in outputs if out not in created)
    assert all(err == "" for _, _, err in outputs)
    sha = shop.releases["v1.1.0"].sha
    assert [c for c, _ in dbtools.saved_states(pod.url)] == [shop.releases["v1.0.0"].sha, sha]


def release_later(seconds: float, event: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), event.set()))
    thread.start()
    return thread


def hold_lock_until(url: str, event: threading.Event, held: threading.Event) -> threading.Thread:
    def run() -> None:
        with dbtools.rollback_lock_held(url):
            held.set()
            event.wait(60)

    thread = threading.Thread(target=run)
    thread.start()
    assert held.wait(30)
    return thread


def test_save_during_a_rollback_waits_or_refuses(shop: History) -> None:
    v100 = shop.deploy("v1.0.0")
    pod = Project(shop.releases["v1.1.0"].worktree, v100.url)
    pod.ok("migrate", "--no-input")
    with dbtools.rollback_lock_held(pod.url):
        result = assert_refused(
            pod, "save_migrations_state", "--wait", "0.5", says="A rollback is running"
        )
        assert "the state was not saved" in result.stderr
    done, held = threading.Event(), threading.Event()
    holder = hold_lock_until(pod.url, done, held)
    release_later(1.5, done)
    began = time.monotonic()
    out = pod.ok("save_migrations_state", "--wait", "60")
    holder.join()
    assert time.monotonic() - began >= 1.0
    assert "State successfully created" in out


def test_rollback_waits_for_the_lock_with_wait(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    done, held = threading.Event(), threading.Event()
    holder = hold_lock_until(project.url, done, held)
    try:
        assert_refused(project, "rollback_migrations", "--wait", "0.3", says="Another rollback")
        release_later(1.0, done)
        out = project.ok("rollback_migrations", "--wait", "60")
    finally:
        done.set()
        holder.join()
    assert "Rollback successfully finished" in out
    assert dbtools.schema(project.url) == shop.releases["v1.0.0"].schema


def test_negative_wait_is_refused(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    assert_refused(project, "rollback_migrations", "--wait", "-1", says="--wait needs")
    assert_refused(project, "save_migrations_state", "--wait", "-1", says="--wait needs")


# --- drift check ---------------------------------------------------------------------------


def test_check_is_ok_then_fails_after_a_manual_migrate(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    before = dbtools.everything(project.url)
    result = project.manage("rollback_migrations", "--check")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("OK: database 'default' matches the saved state of commit")
    assert dbtools.everything(project.url) == before  # a probe never writes

    project.ok("migrate", "shipping", "zero")
    result = project.manage("rollback_migrations", "--check")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "no longer matches the saved state" in line
    assert "2 saved but not applied" in line and "shipping.0001_initial" in line

    result = project.manage("rollback_migrations", "--check", "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["status"] == "drifted"
    assert report["missing"] == [["shipping", "0001_initial"], ["shipping", "0002_backfill"]]
    assert report["unexpected"] == []
    assert report["commit"] == shop.releases["v1.1.0"].sha


def test_check_fails_when_the_commit_is_not_saved_or_not_the_latest(
    shop: History, tmp_path: Path
) -> None:
    project = shop.deploy("v1.1.0", own_checkout=tmp_path / "checkout")
    older = Project(shop.releases["v1.0.0"].worktree, project.url)
    result = older.manage("rollback_migrations", "--check")
    assert result.returncode == 2 and "is not the latest saved state" in result.stderr
    git(project.path, "commit", "-q", "--allow-empty", "-m", "never deployed")
    result = project.manage("rollback_migrations", "--check", "--json")
    assert result.returncode == 2 and "has no saved state" in result.stderr
    assert json.loads(result.stdout)["status"] == "not_saved"


def test_check_json_when_ok(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    report = json.loads(project.ok("rollback_migrations", "--check", "--json"))
    assert report["ok"] is True and report["status"] == "ok" and report["command"] == "check"
    assert report["state_id"] == report["latest_state_id"]


# --- JSON ----------------------------------------------------------------------------------


def run_json(project: Project, *args: str, code: int = 0) -> dict:  # type: ignore[type-arg]
    result = project.manage(*args, "--json")
    assert result.returncode == code, result.stdout + result.stderr
    document = json.loads(result.stdout)  # the whole of stdout is one document
    if code == 0:
        assert result.stderr == ""
    else:
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    return document


def test_json_dry_run_and_rollback(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    before = dbtools.everything(project.url)
    dry = run_json(project, "rollback_migrations", "-t", "v1.2.0", "--fake", "--sql")
    after = dbtools.everything(project.url)
    after.pop("logs"), before.pop("logs")
    assert after == before
    assert dry["ok"] is True and dry["command"] == "rollback" and dry["dry_run"] is True
    assert dry["result"]["status"] == "dry_run" and isinstance(dry["result"]["log_id"], int)
    plan = dry["plan"]
    assert plan["from"] == {"commit": shop.releases["v1.3.0"].sha, "tags": ["v1.3.0"]}
    assert plan["to"] == {"commit": shop.releases["v1.2.0"].sha, "tags": ["v1.2.0"]}
    order = [s["migration"] for s in plan["steps"]]
    assert sorted(order) == [
        "orders.0004_b_order_priority",
        "orders.0005_merge",
        "shipping.0003_shipment_tracking",
    ]
    assert order.index("orders.0005_merge") < order.index("orders.0004_b_order_priority")
    assert any("tracking" in line for line in plan["kept"]) and plan["blockers"] == []
    assert any("-- Unapply orders.0005_merge" in line for line in plan["sql"])
    assert plan["all_or_nothing"] is (dbtools.BACKEND != "mysql")

    done = run_json(project, "rollback_migrations", "-t", "v1.2.0")
    assert done["dry_run"] is False and done["result"]["status"] == "succeeded"
    assert done["result"]["pruned"] == [shop.releases["v1.3.0"].sha]
    assert [s["migration"] for s in done["plan"]["steps"]] == order
    assert dbtools.schema(project.url) == shop.releases["v1.2.0"].schema

    again = run_json(project, "rollback_migrations", "--list")
    assert [s["tags"] for s in again["states"]] == [["v1.2.0"], ["v1.1.0"], ["v1.0.0"]]


def test_json_errors_are_documents_too(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    before = dbtools.everything(project.url)
    error = run_json(project, "rollback_migrations", "-t", "nope", code=1)
    assert error == {
        "ok": False,
        # Issue 10: an unknown tag lists the known ones.
        "error": 'Unknown tag "nope": no saved state carries it and git has no such tag. '
        "Known tags: v2.1.0, v2.0.0, v1.3.0, v1.2.0, v1.1.0, ....",
    }
    assert dbtools.everything(project.url) == before
    nothing = run_json(project, "rollback_migrations", "-t", "v1.1.0")
    assert nothing["result"] == {"status": "nothing_to_do"}


@pytest.mark.parametrize("args", [["--list", "--check"], ["--check", "-t", "v1.0.0"]])
def test_check_with_other_modes_is_refused(shop: History, args: list[str]) -> None:
    assert_refused(shop.deploy("v1.1.0"), "rollback_migrations", *args, says="only")


# --- several databases ---------------------------------------------------------------------


def test_two_databases_keep_their_own_states_and_roll_back_alone(
    databases: dbtools.Databases, tmp_path: Path
) -> None:
    repo = init_repo(tmp_path / "warehouse")
    default_url, warehouse_url = databases.new_url("main"), databases.new_url("warehouse")
    env = {"WAREHOUSE_URL": warehouse_url}
    project = Project(repo, default_url)
    shas, schemas = {}, {}
    for tag, files in warehouse_releases():
        write_release(repo, files)
        shas[tag] = commit_release(repo, tag)
        for alias in ("default", "warehouse"):
            manage_env(project, env, "migrate", "--no-input", "--database", alias)
            manage_env(project, env, "save_migrations_state", "--database", alias)
        schemas[tag] = (dbtools.schema(default_url), dbtools.schema(warehouse_url))

    # Each app's tables in its own database, django_rollback's in both, a state in each.
    own = {"django_rollback_migrationstate", "django_rollback_rollbacklog", "django_migrations"}
    own |= {"django_rollback_fleetdecision"}  # --atomic's decisions (fleet/atomic.py)
    assert set(dbtools.tables(default_url)) == own | {"shelf_book"}
    assert set(dbtools.tables(warehouse_url)) == own | {"stock_item"}
    for url in (default_url, warehouse_url):
        assert [c for c, _ in dbtools.saved_states(url)] == [shas["v1"], shas["v2"]]

    args = ("rollback_migrations", "--database", "warehouse", "--fake", "--json")
    preview = json.loads(manage_env(project, env, *args))
    assert preview["plan"]["database"] == "warehouse"
    # Only what the router lets into this database is counted as data lost.
    assert preview["plan"]["kept"][0] == (
        'stock.0002_item_quantity: drops column "stock_item"."quantity" (3 non-null values): '
        "archived (3 non-null values, restorable)"
    )
    assert not any(
        "shelf" in line for line in preview["plan"]["kept"] + preview["plan"]["warnings"]
    )

    default_before = dbtools.everything(default_url)
    out = manage_env(project, env, "rollback_migrations", "--database", "warehouse")
    assert "Rollback successfully finished" in out
    assert dbtools.schema(warehouse_url) == schemas["v1"][1]
    assert dbtools.row_counts(warehouse_url) == {"stock_item": 3}
    assert [c for c, _ in dbtools.saved_states(warehouse_url)] == [shas["v1"]]
    assert dbtools.everything(default_url) == default_before  # the other database is untouched

    report = project.manage("rollback_migrations", "--check", "--database", "warehouse", env=env)
    assert report.returncode == 2 and "no saved state in database 'warehouse'" in report.stderr
    assert manage_env(project, env, "rollback_migrations", "--check").startswith("OK:")

    manage_env(project, env, "rollback_migrations")  # now the default database
    assert dbtools.schema(default_url) == schemas["v1"][0]
    assert dbtools.schema(warehouse_url) == schemas["v1"][1]


# --- the services, in process --------------------------------------------------------------


def test_commit_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings) -> None:  # type: ignore[no-untyped-def]
    repo = init_repo(tmp_path / "repo")
    (repo / "f").write_text("x")
    head = commit_release(repo, "v1")
    from_flag, from_env, from_settings = "a" * 40, "b" * 40, "c" * 40

    found = services.current_commit(repo_path=repo)
    assert (found.sha, found.tags, found.source) == (head, ("v1",), "git")
    settings.DJANGO_ROLLBACK = {"COMMIT": from_settings.upper(), "TAGS": "s2, s1"}
    found = services.current_commit(repo_path=repo)
    assert (found.sha, found.tags, found.source) == (from_settings, ("s1", "s2"), "settings")
    monkeypatch.setenv("DJANGO_ROLLBACK_COMMIT", from_env)
    monkeypatch.setenv("DJANGO_ROLLBACK_TAGS", "e1")
    found = services.current_commit(repo_path=repo)
    assert (found.sha, found.tags, found.source) == (from_env, ("e1",), "environment")
    found = services.current_commit(repo_path=repo, commit=from_flag, tags=["f1", "f1"])
    assert (found.sha, found.tags, found.source) == (from_flag, ("f1",), "option")

    # A commit git does not have gets no tags from it: they stay unknown.
    monkeypatch.delenv("DJANGO_ROLLBACK_TAGS")
    settings.DJANGO_ROLLBACK = {}
    found = services.current_commit(repo_path=repo)
    assert (found.tags, found.tags_known) == ((), False)
    monkeypatch.setenv("DJANGO_ROLLBACK_COMMIT", head)
    assert services.current_commit(repo_path=repo).tags == ("v1",)

    monkeypatch.delenv("DJANGO_ROLLBACK_COMMIT")
    with pytest.raises(RollbackError, match="The current commit is unknown"):
        services.current_commit(repo_path=tmp_path / "nowhere")
    with pytest.raises(RollbackError, match='--commit "HEAD" is not a full commit hash'):
        services.current_commit(repo_path=repo, commit="HEAD")


@pytest.mark.django_db
def test_check_drift_service_reports_what_differs(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    (repo / "f").write_text("x")
    commit_release(repo, "v1")
    assert services.check_drift(repo_path=repo).status == "not_saved"
    services.save_state(repo_path=repo)
    report = services.check_drift(repo_path=repo)
    assert report.ok and report.status == "ok" and report.message.startswith("OK: ")
    MigrationRecorder(connection).record_unapplied("auth", "0001_initial")
    MigrationRecorder(connection).record_applied("made", "0001_up")
    report = services.check_drift(repo_path=repo, database="default")
    assert not report.ok and report.status == "drifted"
    assert report.missing == {("auth", "0001_initial")}
    assert report.unexpected == {("made", "0001_up")}
    assert report.as_dict()["missing"] == [["auth", "0001_initial"]]


# --- a failure part way, then the same rollback again ---------------------------------------

GUARD = """
def guard(apps, schema_editor):
    if apps.get_model("shelf", "Book").objects.filter(title="keep").exists():
        raise RuntimeError("a book is marked keep")
"""


def test_failed_rollback_is_continued_by_running_it_again(
    databases: dbtools.Databases, tmp_path: Path
) -> None:
    _, first = shelf_releases("")[0]
    second = {
        "shelf/migrations/0002_guard.py": migration(
            [("shelf", "0001_initial")],
            "        migrations.RunPython(migrations.RunPython.noop, guard),\n",
            GUARD,
        ),
        "shelf/migrations/0003_book_pages.py": migration(
            [("shelf", "0002_guard")],
            '        migrations.AddField(model_name="book", name="pages",'
            " field=models.IntegerField(null=True)),\n",
        ),
    }
    project, shas = make_project(tmp_path / "shelf", databases, [("v1", first)])
    v1_schema = dbtools.schema(project.url)
    write_release(project.path, second)
    shas["v2"] = commit_release(project.path, "v2")
    project.deploy()
    dbtools.execute(project.url, "INSERT INTO shelf_book (title) VALUES ('keep')")
    before = dbtools.everything(project.url)

    result = project.manage("rollback_migrations")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "Rollback failed at shelf.0002_guard: a book is marked keep" in line
    after = dbtools.everything(project.url)
    assert after.pop("logs")[-1][0] == "failed"
    before.pop("logs")
    if dbtools.BACKEND == "mysql":
        # Step by step: 0003 was unapplied and stays so; the saved states are unchanged.
        assert "1 step before it stays unapplied; saved states unchanged" in line
        assert after["applied"] == before["applied"] - {("shelf", "0003_book_pages")}
        assert after["states"] == before["states"]
        check = project.manage("rollback_migrations", "--check")
        assert check.returncode == 2 and "1 saved but not applied" in check.stderr
    else:
        assert "the database is unchanged" in line
        assert after == before

    dbtools.execute(project.url, "DELETE FROM shelf_book WHERE title = 'keep'")
    out = project.ok("rollback_migrations")
    assert "Rollback successfully finished" in out
    assert dbtools.schema(project.url) == v1_schema
    assert [c for c, _ in dbtools.saved_states(project.url)] == [shas["v1"]]
