"""Data migrations run under the lazy registry (LazyProjectState: a model is rendered when the
code asks for it) must leave the database exactly as under Django's own registry (every model
rendered): the same data migrations, forwards then backwards, on two databases, one per
registry, compared row by row through the raw drivers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import migrations, models
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from django_rollback.lazy_state import LazyProjectState
from django_rollback.planning import _describe_step, _state_for_step, _states_before

from . import dbtools

SETTINGS = """\
import environ
SECRET_KEY = "lazy"
USE_TZ = True
DATABASES = {"default": environ.Env().db("DATABASE_URL")}
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "accounts", "library"]
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""

HEAD = "import django.db.models.deletion\nfrom django.conf import settings\nfrom django.db import migrations, models\n"
CASCADE = "on_delete=django.db.models.deletion.CASCADE"
ID = '("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False))'

ACCOUNTS_0001 = f"""{HEAD}

class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(name="User", fields=[
            {ID},
            ("password", models.CharField(max_length=128)),
            ("last_login", models.DateTimeField(blank=True, null=True)),
            ("username", models.CharField(max_length=50, unique=True)),
        ], options={{"abstract": False}}),
    ]
"""

ACCOUNTS_MODELS = """\
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models


class User(AbstractBaseUser):
    username = models.CharField(max_length=50, unique=True)
    USERNAME_FIELD = "username"
"""

LIBRARY_0001 = f"""{HEAD}

class Migration(migrations.Migration):
    initial = True
    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]
    operations = [
        migrations.CreateModel(name="Author", fields=[{ID}, ("name", models.CharField(max_length=50))]),
        migrations.CreateModel(name="Tag", fields=[{ID}, ("name", models.CharField(max_length=50))]),
        migrations.CreateModel(name="Book", fields=[
            {ID},
            ("title", models.CharField(max_length=50)),
            ("pages", models.IntegerField(default=0)),
            ("author", models.ForeignKey({CASCADE}, related_name="books", to="library.author")),
            ("owner", models.ForeignKey(null=True, {CASCADE}, related_name="owned_books", to=settings.AUTH_USER_MODEL)),
            ("readers", models.ManyToManyField(related_name="read_books", to=settings.AUTH_USER_MODEL)),
        ]),
        migrations.CreateModel(name="BookTag", fields=[
            {ID},
            ("weight", models.IntegerField()),
            ("book", models.ForeignKey({CASCADE}, to="library.book")),
            ("tag", models.ForeignKey({CASCADE}, to="library.tag")),
        ]),
        migrations.AddField(model_name="book", name="tags", field=models.ManyToManyField(related_name="books", through="library.BookTag", to="library.tag")),
        migrations.CreateModel(name="Ebook", fields=[
            ("book_ptr", models.OneToOneField(auto_created=True, {CASCADE}, parent_link=True, primary_key=True, serialize=False, to="library.book")),
            ("url", models.CharField(max_length=100)),
        ], bases=("library.book",)),
        migrations.CreateModel(name="PopularBook", fields=[], options={{"proxy": True}}, bases=("library.book",)),
        migrations.CreateModel(name="Review", fields=[
            {ID},
            ("stars", models.IntegerField()),
            ("book", models.ForeignKey({CASCADE}, related_name="reviews", to="library.book")),
            ("user", models.ForeignKey({CASCADE}, related_name="reviews", to=settings.AUTH_USER_MODEL)),
        ]),
        migrations.CreateModel(name="Note", fields=[{ID}, ("text", models.TextField())]),
        migrations.CreateModel(name="Shelf", fields=[
            {ID},
            ("name", models.CharField(max_length=50)),
            ("user", models.ForeignKey({CASCADE}, related_name="shelves", to=settings.AUTH_USER_MODEL)),
        ]),
    ]
"""

# Forwards: forward foreign keys, the swappable user model, many-to-many (auto and explicit
# through), multi-table inheritance, a proxy, related_names in queries. Backwards: deletes
# that cascade across all of those, reverse accessors on instances reached through a foreign
# key (the user's, whose model the code never asked for).
LIBRARY_0002 = f"""{HEAD}
RENDERED = []


def rendered(apps):
    return sum(len(models) for models in apps.all_models.values())


def note(apps, text):
    apps.get_model("library", "Note").objects.create(text=text)


def forwards(apps, schema_editor):
    User = apps.get_model(settings.AUTH_USER_MODEL)
    Author = apps.get_model("library", "Author")
    Book = apps.get_model("library", "Book")
    Ebook = apps.get_model("library", "Ebook")
    Review = apps.get_model("library", "Review")
    Tag = apps.get_model("library", "Tag")
    users = [User.objects.create(username=name, password="-") for name in ("ann", "bob", "cy")]
    herbert = Author.objects.create(name="Herbert")
    le_guin = Author.objects.create(name="Le Guin")
    sf, classic = Tag.objects.create(name="sf"), Tag.objects.create(name="classic")
    dune = Book.objects.create(title="Dune", pages=412, author=herbert, owner=users[0])
    messiah = Book.objects.create(title="Dune Messiah", pages=256, author=herbert)
    earthsea = Ebook.objects.create(title="Earthsea", pages=183, author=le_guin, owner=users[1], url="e://1")
    dune.readers.add(users[0], users[1])
    earthsea.readers.add(users[2])
    dune.tags.add(sf, through_defaults={{"weight": 3}})
    earthsea.tags.add(sf, classic, through_defaults={{"weight": 1}})
    for book, user, stars in [(dune, users[0], 5), (dune, users[1], 2), (messiah, users[2], 4), (earthsea, users[0], 5)]:
        Review.objects.create(book=book, user=user, stars=stars)
    # related_names across relations, both ways
    liked = Author.objects.filter(books__reviews__stars=5).distinct().order_by("name")
    note(apps, "liked: " + ", ".join(a.name for a in liked))
    readers = User.objects.filter(read_books__tags__name="sf").distinct().order_by("username")
    note(apps, "sf readers: " + ", ".join(u.username for u in readers))
    # a proxy and multi-table inheritance
    PopularBook = apps.get_model("library", "PopularBook")
    PopularBook.objects.filter(reviews__stars=5).update(pages=models.F("pages") + 1)
    note(apps, "ebook of earthsea: " + Book.objects.get(title="Earthsea").ebook.url)
    Shelf = apps.get_model("library", "Shelf")
    Shelf.objects.create(user=users[0], name="ann's")
    Shelf.objects.create(user=users[2], name="cy's")
    note(apps, "owners: " + ", ".join(sorted(b.owner.username for b in Book.objects.filter(owner__isnull=False))))
    RENDERED.append(rendered(apps))


def backwards(apps, schema_editor):
    Review = apps.get_model("library", "Review")
    user = Review.objects.order_by("pk").first().user
    # reverse accessors of a user reached through a foreign key; Shelf was never asked for
    note(apps, f"{{user.username}}: owns {{user.owned_books.count()}}, reviewed {{user.reviews.count()}}, shelves {{user.shelves.count()}}")
    # a cascade from the author through a child model never asked for (Ebook)
    Review.objects.get(book__title="Earthsea").book.author.delete()
    # a cascade through the user: reviews, shelves, many-to-many rows
    Review.objects.get(stars=4).user.delete()
    left = Review.objects.order_by("pk")
    note(apps, "left: " + ", ".join(f"{{r.book.title}}/{{r.user.username}}/{{r.stars}}" for r in left))
    RENDERED.append(rendered(apps))


class Migration(migrations.Migration):
    dependencies = [("library", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
"""

# get_models() and the app config: the whole registry, under both.
LIBRARY_0003 = f"""{HEAD}

def forwards(apps, schema_editor):
    Note = apps.get_model("library", "Note")
    Note.objects.create(text="models: " + ", ".join(sorted(m._meta.label for m in apps.get_models())))
    everything = apps.get_models(include_auto_created=True)
    Note.objects.create(text="with auto-created: " + ", ".join(sorted(m._meta.label for m in everything)))
    app = apps.get_app_config("library")
    Note.objects.create(text="library: " + ", ".join(sorted(m.__name__ for m in app.get_models())))


def backwards(apps, schema_editor):
    for model in apps.get_models():
        if model._meta.label == "library.Note":
            model.objects.filter(text__startswith="models: ").delete()


class Migration(migrations.Migration):
    dependencies = [("library", "0002_data")]
    operations = [migrations.RunPython(forwards, backwards)]
"""

RUN = """
import json, sys
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_rollback.lazy_state import LazyProjectState

registry, direction, name = sys.argv[1:4]
if direction == "forwards" and name == "0002_data":
    for app in ("contenttypes", "auth"):
        call_command("migrate", app, verbosity=0)
    call_command("migrate", "library", "0001", verbosity=0)
executor = MigrationExecutor(connection)
migration = executor.loader.get_migration("library", name)
# Every applied migration (the data migrations change no model, and are not recorded here).
full = executor._create_project_state(with_applied_migrations=True)
if registry == "lazy":
    state = LazyProjectState(dict(full.models), full.real_apps, set())
else:
    state = full
with connection.schema_editor(atomic=True) as editor:
    if direction == "forwards":
        migration.apply(state, editor)
    else:
        migration.unapply(state, editor)
module = sys.modules[type(migration).__module__]
print(json.dumps({"rendered": getattr(module, "RENDERED", []), "models": len(full.models)}))
"""


def write_project(root: Path) -> None:
    files = {
        "lazyproj/__init__.py": "",
        "lazyproj/settings.py": SETTINGS,
        "accounts/__init__.py": "",
        "accounts/models.py": ACCOUNTS_MODELS,
        "accounts/migrations/__init__.py": "",
        "accounts/migrations/0001_initial.py": ACCOUNTS_0001,
        "library/__init__.py": "",
        "library/migrations/__init__.py": "",
        "library/migrations/0001_initial.py": LIBRARY_0001,
        "library/migrations/0002_data.py": LIBRARY_0002,
        "library/migrations/0003_models.py": LIBRARY_0003,
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def run(root: Path, url: str, registry: str, direction: str, name: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", RUN, registry, direction, name],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "lazyproj.settings",
            "DATABASE_URL": url,
            "PYTHONPATH": os.pathsep.join([str(root), str(Path(__file__).parent.parent)]),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def rows(url: str) -> dict[str, list[tuple]]:
    """Every row of the project's tables, in primary key order."""
    return {
        table: dbtools.query(url, f'SELECT * FROM "{table}" ORDER BY 1')
        for table in dbtools.tables(url)
        if table.startswith(("library_", "accounts_"))
    }


@pytest.mark.parametrize(
    "name",
    ["0002_data", "0003_models"],
    ids=["relations-of-every-kind", "get_models"],
)
def test_data_migrations_leave_the_rows_of_djangos_registry(
    databases: dbtools.Databases, tmp_path: Path, name: str
) -> None:
    write_project(tmp_path)
    urls = {registry: databases.new_url(f"lazy_{registry}") for registry in ("lazy", "full")}
    names = ["0002_data", "0003_models"][: ["0002_data", "0003_models"].index(name) + 1]
    reports: dict[str, list[dict]] = {"lazy": [], "full": []}
    for direction in ("forwards", "backwards"):
        for step in names if direction == "forwards" else reversed(names):
            for registry, url in urls.items():
                reports[registry].append(run(tmp_path, url, registry, direction, step))
            lazy, full = rows(urls["lazy"]), rows(urls["full"])
            assert lazy == full, f"{direction} {step}"
            if direction == "forwards" and step == name:
                after_forwards = lazy
    notes = [text for _, text in after_forwards["library_note"]]
    if name == "0002_data":
        assert notes == [
            "liked: Herbert, Le Guin",
            "sf readers: ann, bob, cy",
            "ebook of earthsea: e://1",
            "owners: ann, bob",
        ]
        assert len(after_forwards["library_book_readers"]) == 3
        assert len(after_forwards["library_booktag"]) == 3
        # Backwards: what cascaded is gone under both registries alike.
        assert [t for _, t in lazy["library_note"]][-2:] == [
            "ann: owns 1, reviewed 2, shelves 1",
            "left: Dune/ann/5, Dune/bob/2",
        ]
        assert len(lazy["library_book"]) == 2 and lazy["library_ebook"] == []
        assert len(lazy["library_review"]) == 2 and len(lazy["library_shelf"]) == 1
        assert [u for _, _, _, u in lazy["accounts_user"]] == ["ann", "bob"]
        # The lazy registry rendered less than the whole project; Django's renders all.
        (lazy_forwards, lazy_backwards), (full_forwards, _) = (
            reports["lazy"][0]["rendered"] + reports["lazy"][1]["rendered"],
            reports["full"][0]["rendered"] + reports["full"][1]["rendered"],
        )
        assert lazy_forwards < full_forwards and lazy_backwards < full_forwards
    else:
        assert notes[-3].startswith("models: accounts.User, auth.Group, auth.Permission,")
        assert "library.Book_readers" in notes[-2] and "auth.User" not in notes[-2]
        assert notes[-1] == (
            "library: Author, Book, BookTag, Ebook, Note, PopularBook, Review, Shelf, Tag"
        )
        assert not any(t.startswith("models: ") for _, t in lazy["library_note"])


def _noop(apps: object, schema_editor: object) -> None:
    pass


class _OwnRunPython(migrations.RunPython):
    """An operation from outside Django (a project's own subclass)."""


def _migration(name: str, *operations: migrations.operations.base.Operation) -> Migration:
    migration = Migration(name, "shelf")
    migration.operations = list(operations)
    return migration


def _book(*extra: tuple[str, models.Field]) -> migrations.CreateModel:
    return migrations.CreateModel(
        "Book", [("id", models.AutoField(primary_key=True)), *extra], bases=(models.Model,)
    )


def test_each_kind_of_step_gets_the_state_it_needs() -> None:
    state = ProjectState()
    _book().state_forwards("shelf", state)
    migrations.CreateModel(
        "Review",
        [
            ("id", models.AutoField(primary_key=True)),
            ("book", models.ForeignKey("shelf.book", models.CASCADE)),
        ],
    ).state_forwards("shelf", state)
    code = _state_for_step(state, _migration("0003", migrations.RunPython(_noop, _noop)))
    assert isinstance(code, LazyProjectState) and len(code.models) == 2
    assert code.apps.is_rendered(("shelf", "book")) is False  # nothing until asked
    sql = _state_for_step(state, _migration("0003", migrations.RunSQL("SELECT 1", "SELECT 1")))
    assert not isinstance(sql, LazyProjectState) and sql.models == {}
    own = _migration("0003", _OwnRunPython(_noop, _noop))
    full = _state_for_step(state, own)
    assert type(full) is ProjectState and len(full.models) == 2
    assert any("not one of Django's operations" in note for note in _describe_step(own).notes)
    assert not any("not one of" in note for note in _describe_step(_migration("0004")).notes)


def test_data_steps_share_model_states_copied_on_write() -> None:
    class Loader:
        unmigrated_apps: set[str] = set()

    plan = [
        _migration("0001", _book()),
        _migration("0002", migrations.RunPython(_noop, _noop)),
        _migration("0003", migrations.AddField("book", "pages", models.IntegerField(default=0))),
        _migration(
            "0004",
            migrations.AddField("book", "isbn", models.IntegerField(default=0)),
            migrations.RunPython(_noop, _noop),
        ),
    ]
    keys = {("shelf", m.name) for m in plan}
    states = _states_before(Loader(), [(m, False) for m in plan], keys, [plan[1], plan[3]])
    book = ("shelf", "book")
    assert "pages" not in states[("shelf", "0002")].models[book].fields
    assert "pages" in states[("shelf", "0004")].models[book].fields
    # A copy changed by its step's operations leaves the state it was copied from alone.
    copy = states[("shelf", "0004")].clone()
    plan[3].operations[0].state_forwards("shelf", copy)
    assert "isbn" not in states[("shelf", "0004")].models[book].fields
    assert "isbn" in copy.models[book].fields
