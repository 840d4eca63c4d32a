"""Fleets: a real django-tenants project (tests/tenants_project.py) in a real git repository,
released three times with tenants and rows, saved and rolled back schema by schema through
manage.py subprocesses. Each schema is compared with its own dump at the target release."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from . import dbtools
from .gitrepo import commit_release, init_repo, write_release
from .projects import Project
from .tenants_project import create_tenant_code, release_files

needs_postgresql = pytest.mark.skipif(
    dbtools.BACKEND != "postgresql",
    reason="django-tenants keeps each tenant in a PostgreSQL schema: it runs on PostgreSQL only",
)

EARLY = ("alpha", "beta", "gamma")  # created at v1.0.0
LATE = "delta"  # created at v2.0.0: no saved state at the earlier releases
TENANTS = (*EARLY, LATE)


class TenantProject(Project):
    def manage(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return super().manage(
            *args, env={"DJANGO_SETTINGS_MODULE": "tenantsite.settings", **(env or {})}
        )


@dataclass
class TenantRelease:
    tag: str
    sha: str
    template_url: str
    schemas: dict[str, list[str]]  # schema name → its dump
    rows: dict[str, dict[str, int]]  # schema name → rows per table


@dataclass
class TenantHistory:
    repo: Path
    databases: dbtools.Databases
    releases: dict[str, TenantRelease] = field(default_factory=dict)

    def deploy(self, tag: str = "v2.0.0") -> TenantProject:
        """A fresh copy of the database as release `tag` left it; the checkout is at HEAD
        (v2.0.0), the newer code a rollback runs from."""
        return TenantProject(self.repo, self.databases.clone(self.releases[tag].template_url, "t"))


def schemas_present(url: str) -> list[str]:
    names = {r[0] for r in dbtools.query(url, "SELECT nspname FROM pg_namespace")}
    return [name for name in ("public", *TENANTS) if name in names]


def dumps(url: str) -> dict[str, list[str]]:
    return {name: dbtools.pg_schema_of(url, name) for name in schemas_present(url)}


def rows(url: str) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for name in schemas_present(url):
        tables = dbtools.query(
            url,
            f"SELECT tablename FROM pg_tables WHERE schemaname = '{name}' "
            "AND (tablename LIKE 'notes_%' OR tablename LIKE 'customers_%')",
        )
        found[name] = {
            t: dbtools.query(url, f'SELECT COUNT(*) FROM "{name}"."{t}"')[0][0]
            for (t,) in sorted(tables)
        }
    return found


def write_rows(url: str, tag: str, tenants: tuple[str, ...]) -> None:
    for name in tenants:
        if tag == "v1.0.0":
            for number in range(1, 4):
                dbtools.execute(
                    url, f"INSERT INTO {name}.notes_note (title) VALUES ('{name} {number}')"
                )
        elif tag == "v1.1.0":
            dbtools.execute(url, f"UPDATE {name}.notes_note SET body = 'body of ' || title")
            dbtools.execute(url, f"INSERT INTO {name}.notes_label (name) VALUES ('red'), ('blue')")
        else:
            dbtools.execute(
                url,
                f"INSERT INTO {name}.notes_comment (note_id, text) "
                f"SELECT id, 'on ' || title FROM {name}.notes_note",
            )


def build_tenant_history(root: Path, databases: dbtools.Databases) -> TenantHistory:
    repo = init_repo(root / "repo")
    history = TenantHistory(repo, databases)
    project = TenantProject(repo, databases.new_url("tenants"))
    for tag, files in release_files():
        write_release(repo, files)
        sha = commit_release(repo, tag)
        project.ok("migrate_schemas", "--noinput")  # django-tenants' migrate
        new = EARLY if tag == "v1.0.0" else (LATE,) if tag == "v2.0.0" else ()
        for name in new:
            project.ok("shell", "-c", create_tenant_code(name))
            if tag != "v1.0.0":  # the rows of the releases before it, in today's columns
                dbtools.execute(
                    project.url,
                    f"INSERT INTO {name}.notes_note (title, body) "
                    f"SELECT '{name} ' || n, 'body' FROM generate_series(1, 3) AS n",
                )
        write_rows(project.url, tag, tuple(t for t in TENANTS if t in schemas_present(project.url)))
        out = project.ok("save_migrations_state")
        assert "Saved the state of" in out, out
        history.releases[tag] = TenantRelease(
            tag, sha, databases.clone(project.url, "ttmpl"), dumps(project.url), rows(project.url)
        )
    return history


@pytest.fixture(scope="module")
def tenants(
    tmp_path_factory: pytest.TempPathFactory, databases: dbtools.Databases
) -> TenantHistory:
    if dbtools.BACKEND != "postgresql":
        pytest.skip("django-tenants keeps each tenant in a PostgreSQL schema: PostgreSQL only")
    return build_tenant_history(tmp_path_factory.mktemp("tenants"), databases)


def states(url: str, schema: str) -> list[str]:
    return [
        r[0]
        for r in dbtools.query(
            url, f'SELECT "commit" FROM "{schema}".django_rollback_migrationstate ORDER BY id'
        )
    ]


def statuses(document: dict) -> dict[str, str]:
    return {entry["schema"]: entry["status"] for entry in document["targets"]}


def run_json(project: TenantProject, *args: str) -> tuple[int, dict]:
    result = project.manage("rollback_migrations", *args, "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


@needs_postgresql
def test_save_keeps_a_state_per_schema_for_the_same_commit(tenants: TenantHistory) -> None:
    url = tenants.deploy().url
    shas = [tenants.releases[tag].sha for tag in ("v1.0.0", "v1.1.0", "v2.0.0")]
    for schema in ("public", *EARLY):
        assert states(url, schema) == shas
    assert states(url, LATE) == shas[-1:]  # created at v2.0.0
    # Saving again (every container start) leaves one state per commit in each schema.
    result = tenants.deploy().manage("save_migrations_state", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [t["schema"] for t in document["targets"]] == ["public", *sorted(TENANTS)]
    assert all(t["ok"] and not t["created"] for t in document["targets"])


@needs_postgresql
def test_every_schema_goes_back_and_a_rerun_leaves_it_alone(tenants: TenantHistory) -> None:
    project = tenants.deploy()
    target = tenants.releases["v1.0.0"]
    newest = tenants.releases["v2.0.0"]

    # Three tenant schemas at once, each in a process and under a lock of its own.
    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved", "--jobs", "3")

    assert code == 0, document
    assert statuses(document) == {
        "alpha": "succeeded",
        "beta": "succeeded",
        "gamma": "succeeded",
        LATE: "skipped",
        "public": "succeeded",
    }
    # Tenants first, then public: the reverse of migrate_schemas' order.
    assert [t["schema"] for t in document["targets"]] == [*sorted(TENANTS), "public"]
    after = dumps(project.url)
    for schema in ("public", *EARLY):
        assert after[schema] == target.schemas[schema], schema
    assert after[LATE] == newest.schemas[LATE]  # left as it is
    counted = rows(project.url)
    for schema in EARLY:
        assert counted[schema] == {"notes_note": 3}
    # Each tenant's dropped tables and columns are kept in an archive schema of its own.
    for schema in EARLY:
        kept = dbtools.query(
            project.url,
            "SELECT tablename FROM pg_tables "
            f"WHERE schemaname = 'django_rollback_archive_{schema}'",
        )
        assert len(kept) == 3, kept  # notes_comment, notes_label, the column notes_note.body
        audit = dbtools.query(
            project.url, f"SELECT status FROM {schema}.django_rollback_rollbacklog"
        )
        assert audit == [("succeeded",)]
        assert states(project.url, schema) == [target.sha]

    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved")

    assert code == 0, document
    assert set(statuses(document).values()) == {"done", "skipped"}
    assert dumps(project.url) == after

    # The newer release deployed again, and rolled back again: the second archive of the
    # same tables sits beside the first.
    project.ok("migrate_schemas", "--noinput")
    project.ok("save_migrations_state")
    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved")

    assert code == 0, document
    assert dumps(project.url) == after


@needs_postgresql
def test_a_tenant_created_after_the_target_refuses_the_run_unless_skipped(
    tenants: TenantHistory,
) -> None:
    project = tenants.deploy()
    before = dumps(project.url)

    result = project.manage("rollback_migrations", "-t", "v1.1.0")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "(delta)" in lines[0] and "--skip-unsaved" in lines[0], lines
    # The preview: one line per group of schemas at the same applied set, then the others.
    assert (
        "  3 tenant schemas (alpha, beta, gamma): 1 migration to unapply: notes.0003_comment"
        in result.stdout
    )
    assert f"{LATE}: unsaved: no state saved" in result.stdout
    assert dumps(project.url) == before
    for schema in ("public", *TENANTS):
        assert (
            dbtools.query(project.url, f"SELECT * FROM {schema}.django_rollback_rollbacklog") == []
        )


@needs_postgresql
def test_a_failing_tenant_is_reported_and_a_rerun_finishes_it(tenants: TenantHistory) -> None:
    project = tenants.deploy()
    target = tenants.releases["v1.0.0"]
    newest = tenants.releases["v2.0.0"]
    beta_before = dbtools.pg_schema_of(project.url, "beta")
    # A session of the site reading beta's comments: its lock keeps beta's tables from
    # being altered within the lock timeout.
    import psycopg2  # the PostgreSQL leg has it

    reader = psycopg2.connect(project.url)
    with reader.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM beta.notes_comment")

    result = project.manage(
        "rollback_migrations",
        "-t",
        "v1.0.0",
        "--skip-unsaved",
        "--jobs",
        "1",
        "--lock-timeout",
        "1",
        "--retries",
        "0",
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    failed = [line for line in errors if "beta: failed:" in line]
    assert len(failed) == 1 and "notes_comment" in failed[0], errors
    assert any("public: held:" in line for line in errors), errors
    assert "1 failed, 1 held" in errors[-1], errors
    after = dumps(project.url)
    assert after["alpha"] == target.schemas["alpha"]
    assert after["gamma"] == target.schemas["gamma"]
    assert after["beta"] == beta_before  # all or nothing in its own transaction
    assert after["public"] == newest.schemas["public"]
    assert dbtools.query(project.url, "SELECT status FROM beta.django_rollback_rollbacklog") == [
        ("failed",)
    ]

    reader.close()
    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved")

    assert code == 0, document
    assert statuses(document) == {
        "alpha": "done",
        "beta": "succeeded",
        "gamma": "done",
        LATE: "skipped",
        "public": "succeeded",
    }
    after = dumps(project.url)
    for schema in ("public", *EARLY):
        assert after[schema] == target.schemas[schema], schema
    assert rows(project.url)["beta"] == {"notes_note": 3}


@needs_postgresql
def test_narrowing_to_some_schemas(tenants: TenantHistory) -> None:
    project = tenants.deploy()
    target = tenants.releases["v1.1.0"]
    newest = tenants.releases["v2.0.0"]

    code, document = run_json(project, "-t", "v1.1.0", "--schemas", "alpha,beta")
    assert code == 0, document
    assert statuses(document) == {"alpha": "succeeded", "beta": "succeeded"}
    after = dumps(project.url)
    assert [after[s] == target.schemas[s] for s in ("alpha", "beta")] == [True, True]
    assert [after[s] == newest.schemas[s] for s in ("gamma", "public")] == [True, True]

    code, document = run_json(project, "-t", "v1.1.0", "--tenants-only", "--skip-unsaved")
    assert code == 0, document
    assert statuses(document) == {
        "alpha": "done",
        "beta": "done",
        "gamma": "succeeded",
        LATE: "skipped",
    }
    assert dumps(project.url)["public"] == newest.schemas["public"]

    code, document = run_json(project, "-t", "v1.1.0", "--shared-only")
    assert code == 0, document
    assert statuses(document) == {"public": "succeeded"}
    after = dumps(project.url)
    for schema in ("public", *EARLY):
        assert after[schema] == target.schemas[schema], schema

    result = project.manage("rollback_migrations", "-t", "v1.1.0", "--schemas", "alpha,nope")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: Unknown schema nope in database 'default': known are alpha, beta, "
        "delta, gamma, public."
    ]


@needs_postgresql
def test_a_tenant_at_another_applied_set_goes_back_on_its_own_plan(
    tenants: TenantHistory,
) -> None:
    project = tenants.deploy()
    target = tenants.releases["v1.0.0"]
    # gamma's deploy stopped one migration short: its own state says so.
    project.ok("migrate_schemas", "--schema", "gamma", "notes", "0002_body_label")
    # A save refused in one schema: that schema's line, the others saved, exit 1.
    refused = project.manage("save_migrations_state")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert [line.split(":")[0] for line in lines] == ["gamma", "CommandError"], lines
    assert "Not saved: 1 migration on disk is not applied" in lines[0]
    assert "Saved the state of 4 of 5 schemas" in lines[1] and "Failed: gamma." in lines[1]
    out = project.ok("save_migrations_state", "--schemas", "gamma", "--allow-unapplied")
    assert "gamma: state updated" in out, out

    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved", "--fake")

    assert code == 0, document
    by_schema = {entry["schema"]: entry for entry in document["targets"]}
    # Each schema's preview names its own tables and rows; the router keeps the tenant
    # tables out of public's, and the shared ones out of the tenants'.
    assert by_schema["public"]["data_loss"] == [
        'customers.0002_client_plan: drops column "customers_client"."plan" '
        "(4 non-null values): archived (4 non-null values, restorable)"
    ]
    assert 'drops table "notes_comment" (3 rows)' in " ".join(by_schema["alpha"]["data_loss"])
    assert "customers" not in " ".join(by_schema["alpha"]["data_loss"])
    assert by_schema["gamma"]["odd"] is True
    assert "not applied: notes.0003_comment" in by_schema["gamma"]["message"]
    assert "notes.0003_comment" not in by_schema["gamma"]["steps"]
    assert by_schema["alpha"]["odd"] is False
    assert "notes.0003_comment" in by_schema["alpha"]["steps"]
    # beta stands where alpha does: it reuses alpha's plan (planned once per group); gamma,
    # odd, has its own.
    assert by_schema["alpha"]["plan_of"] == "alpha"  # planned for itself
    assert by_schema["beta"]["plan_of"] == "alpha"
    assert by_schema["beta"]["steps"] == by_schema["alpha"]["steps"]
    assert by_schema["gamma"]["plan_of"] == "gamma"

    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved")

    assert code == 0, document
    after = dumps(project.url)
    for schema in ("public", *EARLY):
        assert after[schema] == target.schemas[schema], schema


def counted(line: str) -> int:
    """The count a preview line gives: '... drops table "t" (9 rows): archived ...' → 9."""
    match = re.search(r"\((\d[\d,]*) (?:rows?|non-null values?)\)", line)
    assert match, line
    return int(match.group(1).replace(",", ""))


@needs_postgresql
def test_each_schema_sharing_a_plan_has_its_own_rows_counted(tenants: TenantHistory) -> None:
    project = tenants.deploy()
    url = project.url
    # alpha as released; beta with more notes and comments; gamma with none of v2's comments
    # nor v1.1's labels. The three stand at the same place: one plan, three counts.
    dbtools.execute(
        url, "INSERT INTO beta.notes_note (title, body) VALUES ('beta 4', ''), ('beta 5', '')"
    )
    for _ in range(2):
        dbtools.execute(
            url,
            "INSERT INTO beta.notes_comment (note_id, text) SELECT id, 'more' FROM "
            "beta.notes_note WHERE title IN ('beta 1', 'beta 2', 'beta 3')",
        )
    dbtools.execute(url, "DELETE FROM gamma.notes_comment; DELETE FROM gamma.notes_label")
    before = {schema: dumps(url)[schema] for schema in EARLY}

    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved", "--fake")

    assert code == 0, document
    by_schema = {entry["schema"]: entry for entry in document["targets"]}
    assert [by_schema[s]["plan_of"] for s in EARLY] == ["alpha", "alpha", "alpha"]
    expected = {  # table or column → rows in alpha, beta, gamma
        'drops table "notes_comment"': (3, 9, 0),
        'drops table "notes_label"': (2, 2, 0),
        'drops column "notes_note"."body"': (3, 5, 3),
    }
    for what, numbers in expected.items():
        found = [
            counted(next(line for line in by_schema[s]["data_loss"] if what in line)) for s in EARLY
        ]
        assert tuple(found) == numbers, (what, found)
    assert {schema: dumps(url)[schema] for schema in EARLY} == before  # a dry run
    # Above ESTIMATE_ROWS_ABOVE a schema's tables are estimated ("≈"); --exact-counts counts.
    tiny = {"ROLLBACK_SETTINGS": json.dumps({"ESTIMATE_ROWS_ABOVE": 1})}
    for exact, wanted in ((False, True), (True, False)):
        result = project.manage(
            "rollback_migrations",
            "-t",
            "v1.0.0",
            "--skip-unsaved",
            "--fake",
            "--json",
            *(["--exact-counts"] if exact else []),
            env=tiny,
        )
        assert result.returncode == 0, result.stderr
        beta = {e["schema"]: e for e in json.loads(result.stdout)["targets"]}["beta"]
        assert all(("≈" in line) is wanted for line in beta["data_loss"]), beta["data_loss"]
        if exact:
            assert beta["data_loss"] == by_schema["beta"]["data_loss"]

    # The preview's group lines add them up over the group.
    out = project.ok("rollback_migrations", "-t", "v1.0.0", "--skip-unsaved", "--fake")
    assert (
        'notes.0003_comment: drops table "notes_comment": 12 rows in 2 of 3 schemas '
        "(most in beta: 9): archived (restorable)"
    ) in out, out
    assert 'drops column "notes_note"."body": 11 non-null values in 3 of 3 schemas' in out, out

    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved")

    assert code == 0, document
    # What each schema's archive kept is what its preview counted.
    archived = {
        entry["schema"]: entry["archive"]["rows"]
        for entry in document["targets"]
        if entry["schema"] in EARLY
    }
    for schema in EARLY:
        assert archived[schema] == sum(map(counted, by_schema[schema]["data_loss"])), schema
    assert archived["beta"] == 9 + 2 + 5


@needs_postgresql
def test_a_schema_without_what_its_group_drops_is_counted_as_unknown(
    tenants: TenantHistory,
) -> None:
    project = tenants.deploy()
    # Changed by hand behind the migrations' back: beta lost its comments table, gamma the
    # body column. They still share alpha's plan (same applied set, same states).
    dbtools.execute(project.url, "DROP TABLE beta.notes_comment")
    dbtools.execute(project.url, "ALTER TABLE gamma.notes_note DROP COLUMN body")

    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved", "--fake")

    assert code == 0, document
    by_schema = {entry["schema"]: entry for entry in document["targets"]}
    assert by_schema["gamma"]["plan_of"] == "alpha"
    beta, gamma = by_schema["beta"]["data_loss"], by_schema["gamma"]["data_loss"]
    assert 'drops table "notes_comment" (unknown number of rows)' in " ".join(beta)
    assert 'drops column "notes_note"."body" (unknown number of non-null values)' in " ".join(gamma)
    # The failed count of gamma's column leaves the others counted.
    assert [counted(line) for line in gamma if '"body"' not in line] == [3, 2], gamma
    out = project.ok("rollback_migrations", "-t", "v1.0.0", "--skip-unsaved", "--fake")
    assert 'drops table "notes_comment": 6 rows in 2 of 3 schemas (3 in each); not found in 1' in (
        out
    ), out


def test_fleet_options_need_django_tenants() -> None:
    with pytest.raises(CommandError, match="does not use django-tenants"):
        call_command("rollback_migrations", "--schemas", "alpha")
    with pytest.raises(CommandError, match="does not use django-tenants"):
        call_command("save_migrations_state", "--tenants-only")


@needs_postgresql
def test_sigterm_between_schemas_says_what_was_done(tenants: TenantHistory) -> None:
    import os
    import signal
    import sys
    import time

    import psycopg2  # the PostgreSQL leg has it

    project = tenants.deploy()
    target = tenants.releases["v1.0.0"]
    reader = psycopg2.connect(project.url)  # keeps beta's tables busy, as in the test above
    with reader.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM beta.notes_comment")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rollback_migrations", "-t", "v1.0.0", "--skip-unsaved"]
        + ["--jobs", "1", "--lock-timeout", "10", "--retries", "0"],
        cwd=project.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tenantsite.settings",
            "DATABASE_URL": project.url,
        },
    )
    try:
        deadline = time.monotonic() + 120
        while dbtools.query(project.url, "SELECT status FROM beta.django_rollback_rollbacklog") != [
            ("running",)
        ]:
            assert time.monotonic() < deadline, "beta's rollback never started"
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        # The signal is handled when the statement waiting for beta's lock returns.
        _out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        reader.close()

    assert process.returncode == 143, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("CommandError: Interrupted:"), lines
    assert "1 schema rolled back (alpha), the others not; run the same command" in lines[0]
    assert dbtools.pg_schema_of(project.url, "alpha") == target.schemas["alpha"]
    assert dbtools.pg_schema_of(project.url, "beta") == tenants.releases["v2.0.0"].schemas["beta"]

    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved")

    assert code == 0, document
    assert statuses(document)["beta"] == "succeeded"
    after = dumps(project.url)
    for schema in ("public", *EARLY):
        assert after[schema] == target.schemas[schema], schema


def table_rows(url: str, schema: str) -> dict[str, list[tuple]]:
    """Every row of the tenant apps' tables in `schema`, by table, in key order."""
    tables = dbtools.query(
        url,
        f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' "
        "AND tablename LIKE 'notes_%'",
    )
    return {
        t: dbtools.query(url, f'SELECT * FROM "{schema}"."{t}" ORDER BY id')
        for (t,) in sorted(tables)
    }


@needs_postgresql
def test_each_schema_gets_its_archive_back_after_the_newer_release_returns(
    tenants: TenantHistory,
) -> None:
    project = tenants.deploy()
    before = {schema: table_rows(project.url, schema) for schema in TENANTS}
    code, document = run_json(project, "-t", "v1.0.0", "--skip-unsaved")
    assert code == 0, document
    # One schema's modes take --schemas with one name: its own states and archives.
    listed = project.ok("rollback_migrations", "--list", "--schemas", "alpha")
    assert tenants.releases["v1.0.0"].sha[:12] in listed, listed
    listed = project.ok("restore_rollback_archive", "--list", "--schemas", "alpha")
    assert "Archives in database 'default'" in listed and "kept" in listed, listed
    many = project.manage("restore_rollback_archive", "--list", "--tenants-only")
    assert many.returncode == 1
    assert many.stderr.strip().splitlines() == [
        "CommandError: This acts on one schema: give --schemas one name (--tenants-only "
        "names many)."
    ]

    many = project.manage("rollback_migrations", "--list", "--tenants-only")
    assert many.returncode == 1
    assert many.stderr.strip().splitlines() == [
        "CommandError: --list, --check, --rehearse, --sql and --round-trip act on one schema "
        "(public, or the one --schemas names): drop --tenants-only, --shared-only, "
        "--skip-unsaved, --atomic and --all-databases."
    ]

    project.ok("migrate_schemas", "--noinput")  # the newer release deployed again
    emptied = {schema: table_rows(project.url, schema) for schema in TENANTS}
    assert emptied["alpha"] != before["alpha"]  # re-created empty: the rows are archived
    fake = project.ok("restore_rollback_archive", "--tenants-only", "--fake")
    assert "alpha: Dry run: restoring would put back" in fake, fake
    assert {schema: table_rows(project.url, schema) for schema in TENANTS} == emptied

    result = project.manage("restore_rollback_archive", "--tenants-only", "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert {t["schema"]: t["status"] for t in document["targets"]} == {
        "alpha": "restored",
        "beta": "restored",
        "gamma": "restored",
        LATE: "nothing",  # skipped by the rollback: nothing was archived there
    }
    for schema in TENANTS:  # every row and value back, row by row
        assert table_rows(project.url, schema) == before[schema], schema

    again = project.manage("restore_rollback_archive", "--tenants-only")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == (
        "Restored the archives of 0 of 4 schemas (4 had nothing to restore)."
    )
