"""The "blog" project the life-cycle machine deploys and rolls back: five releases of one app
in a real git repository.

Why not the shop (tests/shop.py): its reverse data migrations delete rows by design (the
sample orders, every shipment), and its finalized squash cannot be reached from every earlier
release; both would make "nothing written is ever lost" false for reasons that are no bug.
The blog has what the issue lists instead, with reverse code that never deletes a row:

- v1: authors and posts (a foreign key);
- v2: tags, a many-to-many from posts to tags, a foreign key from posts to the user model;
- v3: a column with a default (post.score) and a data migration that fills it;
- v4: a rename (author.name → full_name) and a new table pointing at posts and users;
- v5: a nullable column (post.subtitle) with an index.

The settings read extra DATABASES options and DJANGO_ROLLBACK keys from the environment, so
one checkout serves direct connections and PgBouncer alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import dbtools
from ..gitrepo import commit_release, init_repo, write_release
from ..projects import Project
from ..shop import ID, MANAGE, app_files, migration

SETTINGS = """\
import json
import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
SECRET_KEY = "blog"
USE_TZ = True
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"].update(json.loads(os.environ.get("DATABASE_OPTIONS", "{}")))
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_rollback",
    "blog",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_ROLLBACK = {"REPO_PATH": BASE_DIR}
DJANGO_ROLLBACK.update(json.loads(os.environ.get("ROLLBACK_SETTINGS", "{}")))
"""

USER = "django.conf.settings.AUTH_USER_MODEL"
FK = "django.db.models.deletion"
FILL_SCORE = """
def fill_score(apps, schema_editor):
    Post = apps.get_model("blog", "Post")
    for post in Post.objects.filter(score=0):
        post.score = len(post.title)
        post.save(update_fields=["score"])
"""


def _blog(name: str, dependencies: list[tuple[str, str]], operations: str, extra: str = "") -> str:
    body = migration(dependencies, operations, extra)
    return body.replace(
        "import django.db.models.deletion\n",
        "import django.db.models.deletion\nimport django.conf\n",
    )


def release_files() -> list[tuple[str, dict[str, str | None]]]:
    """(tag, files) of each release, oldest first."""
    m = "blog/migrations/"
    v1: dict[str, str | None] = {
        "manage.py": MANAGE,
        "shop/__init__.py": "",
        "shop/settings.py": SETTINGS,
        **app_files("blog"),
        m + "__init__.py": "",
        m + "0001_initial.py": _blog(
            "0001",
            [],
            f"""\
        migrations.CreateModel(name="Author", fields=[{ID}, ("name", models.CharField(max_length=50))]),
        migrations.CreateModel(name="Post", fields=[
            {ID},
            ("title", models.CharField(max_length=100)),
            ("author", models.ForeignKey(on_delete={FK}.CASCADE, to="blog.author")),
        ]),
""",
        ),
    }
    v2: dict[str, str | None] = {
        m + "0002_tags_owner.py": _blog(
            "0002",
            [("blog", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")],
            f"""\
        migrations.CreateModel(name="Tag", fields=[{ID}, ("label", models.CharField(max_length=30))]),
        migrations.AddField(model_name="post", name="tags", field=models.ManyToManyField(to="blog.tag")),
        migrations.AddField(model_name="post", name="owner", field=models.ForeignKey(null=True, on_delete={FK}.SET_NULL, to={USER})),
""",
        ),
    }
    v3: dict[str, str | None] = {
        m + "0003_post_score.py": _blog(
            "0003",
            [("blog", "0002_tags_owner")],
            '        migrations.AddField(model_name="post", name="score", field=models.IntegerField(default=0)),\n',
        ),
        m + "0004_fill_score.py": _blog(
            "0004",
            [("blog", "0003_post_score")],
            "        migrations.RunPython(fill_score, migrations.RunPython.noop),\n",
            FILL_SCORE,
        ),
    }
    v4: dict[str, str | None] = {
        m + "0005_rename_author_name.py": _blog(
            "0005",
            [("blog", "0004_fill_score")],
            '        migrations.RenameField(model_name="author", old_name="name", new_name="full_name"),\n',
        ),
        m + "0006_comment.py": _blog(
            "0006",
            [("blog", "0005_rename_author_name")],
            f"""\
        migrations.CreateModel(name="Comment", fields=[
            {ID},
            ("body", models.CharField(max_length=200)),
            ("post", models.ForeignKey(on_delete={FK}.CASCADE, to="blog.post")),
            ("user", models.ForeignKey(null=True, on_delete={FK}.SET_NULL, to={USER})),
        ]),
""",
        ),
    }
    v5: dict[str, str | None] = {
        m + "0007_post_subtitle.py": _blog(
            "0007",
            [("blog", "0006_comment")],
            '        migrations.AddField(model_name="post", name="subtitle", field=models.CharField(max_length=80, null=True)),\n'
            '        migrations.AddIndex(model_name="post", index=models.Index(fields=["subtitle"], name="blog_post_subtitle_idx")),\n',
        ),
    }
    return [("v1", v1), ("v2", v2), ("v3", v3), ("v4", v4), ("v5", v5)]


TAGS = [tag for tag, _ in release_files()]

# The columns the machine writes, per table, and the release that brings each (index into
# TAGS). Logical names: author.name is the column "name" before v4 and "full_name" from v4.
COLUMNS: dict[str, dict[str, int]] = {
    "auth_user": {"username": 0},
    "blog_author": {"name": 0},
    "blog_post": {"title": 0, "author_id": 0, "owner_id": 1, "score": 2, "subtitle": 4},
    "blog_tag": {"label": 1},
    "blog_post_tags": {"post_id": 1, "tag_id": 1},
    "blog_comment": {"body": 3, "post_id": 3, "user_id": 3},
}
TABLE_SINCE = {"auth_user": 0, "blog_author": 0, "blog_post": 0, "blog_tag": 1}
TABLE_SINCE |= {"blog_post_tags": 1, "blog_comment": 3}
# Foreign keys: column → table it points at.
REFERENCES = {
    ("blog_post", "author_id"): "blog_author",
    ("blog_post", "owner_id"): "auth_user",
    ("blog_post_tags", "post_id"): "blog_post",
    ("blog_post_tags", "tag_id"): "blog_tag",
    ("blog_comment", "post_id"): "blog_post",
    ("blog_comment", "user_id"): "auth_user",
}


def physical(table: str, column: str, release: int) -> str:
    """The column's name in the database at this release."""
    if (table, column) == ("blog_author", "name") and release >= 3:
        return "full_name"
    return column


def aliases(table: str, column: str) -> tuple[str, ...]:
    """Every name the column has had (an archive keeps the name of its time)."""
    if (table, column) == ("blog_author", "name"):
        return ("name", "full_name")
    return (column,)


@dataclass
class Reference:
    """One release deployed fresh (every release before it in turn, as a new database
    reaches it): its schema dump and applied set, for the invariants to compare with."""

    tag: str
    sha: str
    schema: list[str]
    applied: frozenset[tuple[str, str]]


@dataclass
class Blog:
    repo: Path
    template_url: str  # v1 then v2 deployed and saved: where every run starts
    releases: list[Reference] = field(default_factory=list)
    start: int = 1  # the release of the template: a rollback is possible from the first step

    def index_of_applied(self, applied: set[tuple[str, str]]) -> int | None:
        for index, release in enumerate(self.releases):
            if release.applied == applied:
                return index
        return None


def build(root: Path, databases: dbtools.Databases) -> Blog:
    repo = init_repo(root / "repo")
    url = databases.new_url("blog")
    blog = Blog(repo, "")
    for tag, files in release_files():
        write_release(repo, files)
        sha = commit_release(repo, tag)
        Project(repo, url).deploy()
        if len(blog.releases) == blog.start:
            blog.template_url = databases.clone(url, "blogtmpl")
        blog.releases.append(
            Reference(tag, sha, dbtools.schema(url), frozenset(dbtools.applied(url)))
        )
    return blog
