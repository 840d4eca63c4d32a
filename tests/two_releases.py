"""The one-app shelf project in two releases, v1 deployed: what the readiness, rehearsal
and round-trip tests start from."""

from __future__ import annotations

from pathlib import Path

from . import dbtools
from .gitrepo import commit_release, write_release
from .projects import Project, make_project
from .shop import shelf_releases

REVERSIBLE = '        migrations.AddField(model_name="book", name="pages", field=models.IntegerField(null=True)),\n'
IRREVERSIBLE = "        migrations.RunPython(lambda apps, se: None),\n"


def two_releases(
    tmp_path: Path, databases: dbtools.Databases, operations: str, extra: str = ""
) -> tuple[Project, dict[str, str], list[tuple[str, dict[str, str | None]]]]:
    """The one-app shelf project with v1 deployed; v2 written and committed, not deployed."""
    releases = shelf_releases(operations, extra)
    project, shas = make_project(tmp_path / "repo", databases, releases[:1])
    write_release(project.path, releases[1][1])
    shas["v2"] = commit_release(project.path, "v2")
    project.ok("migrate", "--no-input")
    return project, shas, releases
