"""--round-trip REF: forward, back, forward on a scratch database, schemas compared."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import dbtools
from .projects import make_project
from .shop import shelf_releases
from .two_releases import REVERSIBLE


def test_round_trip_passes_when_the_reverse_restores_the_schema(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    operations = (
        REVERSIBLE
        + '        migrations.AddIndex(model_name="book", index=models.Index(fields=["title"], name="shelf_title_idx")),\n'
    )
    project, shas = make_project(tmp_path / "repo", databases, shelf_releases(operations))
    before = dbtools.everything(project.url)
    result = project.manage("rollback_migrations", "--round-trip", "v1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Round trip v1 → HEAD → v1 → HEAD passed: 2 migrations" in result.stdout
    assert dbtools.everything(project.url) == before  # the project's database untouched


FORGETFUL = """

class ForgetfulAlterField(migrations.AlterField):
    \"\"\"Gives the column a database default, and forgets to take it away backwards.\"\"\"

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass
"""


@pytest.mark.parametrize(
    ("operations", "extra", "differences"),
    [
        (
            # The reverse forgets the index that the forward SQL created; migrating forward
            # again then trips over it.
            '        migrations.RunSQL("CREATE INDEX shelf_title_idx ON shelf_book (title)", migrations.RunSQL.noop),\n',
            "",
            [
                'table "shelf_book": index',
                "shelf_title_idx",
                "on (title) unexpected",
                "migrating forward again failed",
            ],
        ),
        (
            # The reverse leaves the column with the default the forward gave it.
            '        ForgetfulAlterField(model_name="book", name="title", field=models.CharField(max_length=50, db_default="untitled")),\n',
            FORGETFUL,
            ['table "shelf_book", column "title": default', "untitled", "expected None"],
        ),
    ],
    ids=["index", "default"],
)
def test_round_trip_catches_a_schema_the_reverse_does_not_restore(
    tmp_path: Path,
    databases: dbtools.Databases,
    operations: str,
    extra: str,
    differences: list[str],
) -> None:
    project, _ = make_project(tmp_path / "repo", databases, shelf_releases(operations, extra))
    before = dbtools.everything(project.url)
    result = project.manage("rollback_migrations", "--round-trip", "v1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for words in differences:
        assert words in result.stdout, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Round trip v1 → HEAD → v1 → HEAD failed: " in errors[0]
    assert dbtools.everything(project.url) == before


def test_schema_comparison_names_every_kind_of_difference() -> None:
    from collections import Counter

    from django_rollback.roundtrip import compare

    def table(default: str | None, null: bool, kind: str) -> dict[str, object]:
        return {
            "columns": {"title": {"type": "CharField(50)", "null": null, "default": default}},
            "constraints": Counter({(kind, "shelf_title_idx", ("title",)): 1}),
        }

    reference = {"shelf_book": table(None, False, "index (btree)"), "gone": table(None, True, "")}
    found = {
        "shelf_book": table("'untitled'", True, "unique index"),
        "extra": table(None, True, ""),
    }
    assert compare(reference, found) == [
        'table "gone": missing',
        'table "extra": unexpected (not in the reference schema)',
        'table "shelf_book", column "title": null True, expected False',
        'table "shelf_book", column "title": default "\'untitled\'", expected None',
        'table "shelf_book": index (btree) "shelf_title_idx" on (title) missing',
        'table "shelf_book": unique index "shelf_title_idx" on (title) unexpected',
    ]
    assert compare(reference, reference) == []
