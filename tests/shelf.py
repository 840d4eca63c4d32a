"""The shelf project: v2 adds a column and a data migration whose reverse code can block
(for Ctrl-C and SIGTERM) or break a constraint (for the first-error message)."""

from __future__ import annotations

from pathlib import Path

from . import dbtools
from .projects import Project, make_project
from .shop import shelf_releases

REVERSE_CODE = """
import os
import time
from pathlib import Path


def reverse(apps, schema_editor):
    mode = os.environ.get("SHELF_REVERSE", "")
    if mode == "block":  # a long data migration, interrupted by the operator
        Path(os.environ["SHELF_READY"]).write_text("running")
        while True:
            time.sleep(0.05)
    if mode == "violate":  # a reverse that breaks a constraint
        apps.get_model("shelf", "Book").objects.create(title=None)
"""
# Unapplied in reverse order: the column "note" is dropped first, then the reverse code runs.
OPERATIONS = (
    "        migrations.RunPython(migrations.RunPython.noop, reverse),\n"
    '        migrations.AddField(model_name="book", name="note", '
    "field=models.CharField(max_length=20, null=True)),\n"
)


def make_shelf(tmp_path: Path, databases: dbtools.Databases) -> tuple[Project, dict[str, str]]:
    return make_project(tmp_path / "shelf", databases, shelf_releases(OPERATIONS, REVERSE_CODE))
