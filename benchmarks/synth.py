"""Synthetic Django projects with thousands of migrations, written into a real git repository.

N apps of M migrations each: the first migration of an app creates its first model, later
ones add a model, a field or an index; about a third also depend on a recent migration of
another app. Variant "plain": no foreign key is shared between apps (a model may point at
the first model of its own app). Variant "user": every model also has a foreign key to the
user model, as in most real projects. models.py always matches the migrations, so `check`
and `migrate` see a consistent project.

Three commits, tagged:
  base    the last migration of the first `rollback_apps` apps is not there yet
  minus1  every app complete except app number `rollback_apps - 1`
  head    every app complete
Deployed in that order (`migrate` + `save_migrations_state`), rolling back from head to base
unapplies the last migration of `rollback_apps` apps, and to the previous state one migration.
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

MANAGE = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

SETTINGS = """\
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
DATABASES = {{"default": environ.Env().db("DATABASE_URL")}}
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_rollback",
] + {apps!r}
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "bench.urls"
TEMPLATES = [{{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {{"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]}},
}}]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_ROLLBACK = {{"REPO_PATH": BASE_DIR}}
"""

URLS = """\
from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
"""

HEADER = [
    "import django.db.models.deletion",
    "from django.conf import settings",
    "from django.db import migrations, models",
]
CASCADE = "on_delete=django.db.models.deletion.CASCADE"


@dataclass
class Step:
    """One migration. `op` is ("create", model, fields), ("field", model, name) or
    ("index", model, index name); fields are (name, "char" | "fk:app.model" | "fk:user")."""

    app: str
    name: str
    dependencies: list[tuple[str, str]]
    op: tuple
    data: bool = False  # also a RunPython step whose reverse code updates the model


@dataclass
class Spec:
    apps: int = 50
    migrations: int = 40
    user_fks: bool = False
    rollback_apps: int = 20
    data_steps: bool = False  # a data step in the last migration of the rolled-back apps
    seed: int = 1
    steps: dict[str, list[Step]] = field(default_factory=dict)

    @staticmethod
    def app(i: int) -> str:
        return f"app{i:02d}"

    @property
    def labels(self) -> list[str]:
        return [self.app(i) for i in range(self.apps)]

    def build(self) -> Spec:
        rng = random.Random(self.seed)
        for i in range(self.apps):
            app = self.app(i)
            steps: list[Step] = []
            models: list[str] = []
            for n in range(1, self.migrations + 1):
                deps = [(app, steps[-1].name)] if steps else []
                if n > 1 and i > 0 and rng.random() < 0.35:
                    other = self.steps[self.app(rng.randrange(i))]
                    deps.append((other[0].app, other[rng.randint(max(1, n - 5), n - 1) - 1].name))
                if n == 1:
                    kind = "create"
                elif n == self.migrations:  # the migrations rolled back: one kind of each
                    kind = ("field", "create", "index")[(i + 2) % 3]
                else:
                    kind = rng.choices(["create", "field", "index"], [3, 5, 2])[0]
                if kind == "create":
                    model = f"A{i:02d}M{len(models)}"
                    fields = [("name", "char")]
                    if models:
                        fields.append(("parent", f"fk:{app}.{models[0].lower()}"))
                    if self.user_fks:
                        fields.append(("owner", "fk:user"))
                    models.append(model)
                    op: tuple = ("create", model, fields)
                    name = f"{n:04d}_{model.lower()}"
                elif kind == "field":
                    model = rng.choice(models)
                    op, name = ("field", model, f"f{n}"), f"{n:04d}_{model.lower()}_f{n}"
                else:
                    model = rng.choice(models)
                    op, name = ("index", model, f"{app}_i{n}"), f"{n:04d}_{model.lower()}_i{n}"
                data = self.data_steps and n == self.migrations and i < self.rollback_apps
                steps.append(Step(app, name, deps, op, data))
            self.steps[app] = steps
        return self


def _field(kind: str, *, in_model: bool) -> str:
    if kind == "char":
        return "models.CharField(max_length=50)"
    if kind == "int":
        return "models.IntegerField(null=True)"
    target = kind[3:]
    to = "settings.AUTH_USER_MODEL" if target == "user" else repr(target)
    if in_model:
        return f"models.ForeignKey({to}, {CASCADE})"
    return f"models.ForeignKey({CASCADE}, to={to})"


def migration_source(step: Step) -> str:
    deps = [repr(d) for d in step.dependencies]
    kind, model, arg = step.op
    if kind == "create":
        if any(f == "fk:user" for _, f in arg):
            deps.append("migrations.swappable_dependency(settings.AUTH_USER_MODEL)")
        fields = [
            '("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, '
            'verbose_name="ID"))',
            *[f"({name!r}, {_field(f, in_model=False)})" for name, f in arg],
        ]
        operation = f"migrations.CreateModel(name={model!r}, fields=[{', '.join(fields)}])"
    elif kind == "field":
        operation = (
            f"migrations.AddField(model_name={model.lower()!r}, name={arg!r}, "
            f"field={_field('int', in_model=False)})"
        )
    else:
        operation = (
            f"migrations.AddIndex(model_name={model.lower()!r}, "
            f"index=models.Index(fields=['name'], name={arg!r}))"
        )
    code: list[str] = []
    if step.data:
        # A data step as releases have them: its reverse code asks for its own model.
        code = [
            "",
            "",
            "def undo_data(apps, schema_editor):",
            f"    model = apps.get_model({step.app!r}, {model!r})",
            "    model.objects.filter(name='').update(name='-')",
        ]
        operation += ", migrations.RunPython(migrations.RunPython.noop, undo_data)"
    return "\n".join(
        [
            *HEADER,
            *code,
            "",
            "",
            "class Migration(migrations.Migration):",
            f"    dependencies = [{', '.join(deps)}]",
            f"    operations = [{operation}]",
            "",
        ]
    )


def models_source(steps: list[Step]) -> str:
    """models.py after these migrations: the same models, fields and indexes."""
    fields: dict[str, list[tuple[str, str]]] = {}
    indexes: dict[str, list[str]] = {}
    for step in steps:
        kind, model, arg = step.op
        if kind == "create":
            fields[model], indexes[model] = list(arg), []
        elif kind == "field":
            fields[model].append((arg, "int"))
        else:
            indexes[model].append(arg)
    out = [*HEADER[:2], "from django.db import models", ""]
    for model, model_fields in fields.items():
        out += ["", f"class {model}(models.Model):"]
        out += [f"    {name} = {_field(f, in_model=True)}" for name, f in model_fields]
        if indexes[model]:
            listed = ", ".join(f"models.Index(fields=['name'], name={n!r})" for n in indexes[model])
            out += ["", "    class Meta:", f"        indexes = [{listed}]"]
    return "\n".join(out) + "\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def write_release(spec: Spec, root: Path, counts: dict[str, int]) -> None:
    """The project with the first `counts[app]` migrations of each app."""
    (root / "bench").mkdir(parents=True, exist_ok=True)
    (root / "manage.py").write_text(MANAGE)
    (root / "bench/__init__.py").write_text("")
    (root / "bench/settings.py").write_text(SETTINGS.format(apps=spec.labels))
    (root / "bench/urls.py").write_text(URLS)
    for app in spec.labels:
        folder = root / app / "migrations"
        folder.mkdir(parents=True, exist_ok=True)
        (root / app / "__init__.py").write_text("")
        (folder / "__init__.py").write_text("")
        steps = spec.steps[app]
        (root / app / "models.py").write_text(models_source(steps[: counts[app]]))
        for number, step in enumerate(steps, 1):
            path = folder / f"{step.name}.py"
            if number <= counts[app]:
                path.write_text(migration_source(step))
            elif path.exists():
                path.unlink()


def releases(spec: Spec) -> dict[str, dict[str, int]]:
    full = {app: spec.migrations for app in spec.labels}
    short = spec.migrations - 1
    return {
        "base": {**full, **{spec.app(i): short for i in range(spec.rollback_apps)}},
        "minus1": {**full, spec.app(spec.rollback_apps - 1): short},
        "head": full,
    }


def generate(spec: Spec, root: Path) -> dict[str, str]:
    """Write the releases into a new git repository at `root`, each committed and tagged;
    leave `base` checked out. Returns {tag: sha}."""
    spec.build()
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "bench@example.com")
    git(root, "config", "user.name", "bench")
    (root / ".gitignore").write_text("__pycache__/\n")
    shas = {}
    for tag, counts in releases(spec).items():
        write_release(spec, root, counts)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"release {tag}")
        git(root, "tag", tag)
        shas[tag] = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "base")
    return shas


def last_migration(spec: Spec, app: str) -> str:
    return spec.steps[app][-1].name


def previous_migration(spec: Spec, app: str) -> str:
    return spec.steps[app][-2].name
