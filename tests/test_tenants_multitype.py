"""Multi-type tenants (django-tenants' HAS_MULTI_TYPE_TENANTS and TENANT_TYPES), PostgreSQL: a
schema's type decides which apps it holds, and django-tenants' router asks the connection for
that type. Tenants alpha and beta are of type "notes", omega of type "plain" (no tenant app's
tables, though its django_migrations records notes' migrations like the others'). Released
three times, saved, then the fleet rolled back: every schema is compared with its own dump at
the target release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import dbtools
from .gitrepo import commit_release, init_repo, write_release
from .tenants_project import create_typed_tenant_code, multitype_release_files
from .test_tenants import TenantProject, counted

pytestmark = pytest.mark.skipif(
    dbtools.BACKEND != "postgresql",
    reason="django-tenants keeps each tenant in a PostgreSQL schema: PostgreSQL only",
)

TYPES = {"alpha": "notes", "beta": "notes", "omega": "plain"}


def schema_dumps(url: str) -> dict[str, list[str]]:
    return {name: dbtools.pg_schema_of(url, name) for name in ("public", *TYPES)}


def test_each_type_is_planned_with_its_own_apps_and_rolled_back(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    repo = init_repo(tmp_path / "repo")
    project = TenantProject(repo, databases.new_url("mtypes"))
    released: dict[str, dict[str, list[str]]] = {}
    for tag, files in multitype_release_files():
        write_release(repo, files)
        commit_release(repo, tag)
        project.ok("migrate_schemas", "--noinput")
        if tag == "v1.0.0":
            for name, tenant_type in TYPES.items():
                project.ok("shell", "-c", create_typed_tenant_code(name, tenant_type))
        if tag == "v2.0.0":
            for name in ("alpha", "beta"):
                dbtools.execute(
                    project.url,
                    f"INSERT INTO {name}.notes_note (title, body) VALUES ('{name}', 'x'); "
                    f"INSERT INTO {name}.notes_comment (note_id, text) "
                    f"SELECT id, 'on ' || title FROM {name}.notes_note",
                )
        out = project.ok("save_migrations_state")
        assert "Saved the state of 4 of 4 schemas" in out, out
        released[tag] = schema_dumps(project.url)
    # omega holds no notes table; its migrations are recorded all the same.
    assert not [line for line in released["v2.0.0"]["omega"] if "notes_" in line]
    assert dbtools.query(
        project.url, "SELECT count(*) FROM omega.django_migrations WHERE app = 'notes'"
    ) == [(3,)]

    result = project.manage("rollback_migrations", "-t", "v1.0.0", "--fake", "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    by_schema = {entry["schema"]: entry for entry in document["targets"]}
    assert {name: entry["status"] for name, entry in by_schema.items()} == dict.fromkeys(
        ("alpha", "beta", "omega", "public"), "planned"
    )
    assert {name: by_schema[name].get("tenant_type") for name in TYPES} == TYPES
    # One plan per type: omega, at the same applied set as alpha and beta, does not take
    # theirs (its router keeps notes out of it), and none of them is odd.
    assert [by_schema[name]["plan_of"] for name in TYPES] == ["alpha", "alpha", "omega"]
    assert document["plans_built"] == 3
    assert not any(entry["odd"] for entry in document["targets"])
    assert by_schema["omega"]["data_loss"] == []
    assert [counted(line) for line in by_schema["beta"]["data_loss"] if "comment" in line] == [1]
    preview = project.ok("rollback_migrations", "-t", "v1.0.0", "--fake")
    assert "2 tenant schemas of type notes (alpha, beta)" in preview, preview
    assert "1 tenant schema of type plain (omega)" in preview, preview

    result = project.manage("rollback_migrations", "-t", "v1.0.0", "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    assert schema_dumps(project.url) == released["v1.0.0"]
    for name in ("public", *TYPES):
        assert dbtools.query(
            project.url,
            f"SELECT count(*) FROM {name}.django_migrations WHERE app = 'notes'",
        ) == [(1,)], name
