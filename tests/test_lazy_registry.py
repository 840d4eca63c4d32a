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
    note(apps, "owners: " + ", ".join(sorted(b.owner.username for b in Book.objects.filter(owner__isnull=False))))
    RENDERED.append(rendered(apps))


def backwards(apps, schema_editor):
    Review = apps.get_model("library", "Review")
    first = Review.objects.order_by("pk").first()
    # reverse accessors of the user, reached through a foreign key
    note(apps, f"{{first.user.username}} owns {{first.user.owned_books.count()}}, reviewed {{first.user.reviews.count()}}")
    first.user.reviews.filter(stars__lt=5).delete()
    # a cascade through the user: reviews and the many-to-many rows go with it
    Review.objects.get(stars=4).user.delete()
    # a cascade from the author: books, their ebook, reviews, tags' through rows, readers
    apps.get_model("library", "Author").objects.filter(name="Herbert").delete()
    ebook = apps.get_model("library", "Ebook").objects.get()
    note(apps, f"left: {{ebook.title}} by {{ebook.author.name}}, {{ebook.reviews.count()}} reviews")
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
            "ann owns 1, reviewed 2",
            "left: Earthsea by Le Guin, 1 reviews",
        ]
        assert len(lazy["library_book"]) == 1 and len(lazy["library_review"]) == 1
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
        assert notes[-1] == "library: Author, Book, BookTag, Ebook, Note, PopularBook, Review, Tag"
        assert not any(t.startswith("models: ") for _, t in lazy["library_note"])
