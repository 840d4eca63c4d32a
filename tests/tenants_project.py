"""A small django-tenants project released three times, for the fleet tests (test_tenants.py).

`customers` is the shared app (the tenant and domain models, in the public schema only);
`notes` is a tenant app (a table per tenant schema). django_rollback is in both lists, so that
each schema keeps its own saved states and audit log (docs/tenants.md says why).

- v1.0.0: customers.0001 (Client, Domain); notes.0001 (Note: title)
- v1.1.0: notes.0002 adds Note.body and a Label table; customers.0002 adds Client.plan
- v2.0.0: notes.0003 adds Comment, and a data migration (reversible) that fills Note.body
"""

from __future__ import annotations

from .shop import ID, MANAGE, migration

SETTINGS = """\
import json
import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
SECRET_KEY = "tenants"
USE_TZ = True
DATABASES = {"default": {**env.db("DATABASE_URL"), "ENGINE": "django_tenants.postgresql_backend"}}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
SHARED_APPS = [
    "django_tenants",
    "customers",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_rollback",
]
TENANT_APPS = ["django.contrib.contenttypes", "django_rollback", "notes"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_ROLLBACK = {"REPO_PATH": BASE_DIR, **json.loads(os.environ.get("ROLLBACK_SETTINGS", "{}"))}
"""

# The same project with Django's admin in the public schema (the demo, `make demo-tenants`, and
# the fleet admin's browser test). No TenantMainMiddleware: every request stays on the public
# schema, where the admin, its users and django_rollback's public states live.
ADMIN_SETTINGS = """\
from .settings import *  # noqa: F403

SHARED_APPS = [*SHARED_APPS, "django.contrib.admin", "django.contrib.sessions",  # noqa: F405
               "django.contrib.messages", "django.contrib.staticfiles"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]  # noqa: F405
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tenantsite.urls"
STATIC_URL = "static/"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
"""

URLS = """\
from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
"""

CUSTOMERS_MODELS_V1 = """\
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)
{extra}

class Domain(DomainMixin):
    pass
"""

CUSTOMERS_0001 = migration(
    [],
    f"""\
        migrations.CreateModel(name="Client", fields=[
            {ID},
            ("schema_name", models.CharField(db_index=True, max_length=63, unique=True)),
            ("name", models.CharField(max_length=100)),
        ], options={{"abstract": False}}),
        migrations.CreateModel(name="Domain", fields=[
            {ID},
            ("domain", models.CharField(db_index=True, max_length=253, unique=True)),
            ("is_primary", models.BooleanField(db_index=True, default=True)),
            ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                related_name="domains", to="customers.client")),
        ], options={{"abstract": False}}),
""",
)

CUSTOMERS_0002 = migration(
    [("customers", "0001_initial")],
    """\
        migrations.AddField(model_name="client", name="plan",
            field=models.CharField(default="free", max_length=20)),
""",
)

NOTES_MODELS = {
    1: """\
from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=100)
""",
    2: """\
from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=100)
    body = models.TextField(default="")


class Label(models.Model):
    name = models.CharField(max_length=30)
""",
    3: """\
from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=100)
    body = models.TextField(default="")


class Label(models.Model):
    name = models.CharField(max_length=30)


class Comment(models.Model):
    note = models.ForeignKey(Note, on_delete=models.CASCADE)
    text = models.CharField(max_length=200)
""",
}

NOTES_0001 = migration(
    [],
    f"""\
        migrations.CreateModel(name="Note", fields=[
            {ID}, ("title", models.CharField(max_length=100)),
        ]),
""",
)

NOTES_0002 = migration(
    [("notes", "0001_initial")],
    f"""\
        migrations.AddField(model_name="note", name="body", field=models.TextField(default="")),
        migrations.CreateModel(name="Label", fields=[
            {ID}, ("name", models.CharField(max_length=30)),
        ]),
""",
)

NOTES_0003 = migration(
    [("notes", "0002_body_label")],
    f"""\
        migrations.CreateModel(name="Comment", fields=[
            {ID},
            ("text", models.CharField(max_length=200)),
            ("note", models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, to="notes.note")),
        ]),
        migrations.RunPython(fill_bodies, migrations.RunPython.noop),
""",
    extra="""\
def fill_bodies(apps, schema_editor):
    Note = apps.get_model("notes", "Note")
    Note.objects.filter(body="").update(body="(empty)")
""",
)


def _app(name: str) -> dict[str, str | None]:
    return {f"{name}/__init__.py": "", f"{name}/migrations/__init__.py": ""}


def release_files() -> list[tuple[str, dict[str, str | None]]]:
    v1: dict[str, str | None] = {
        "manage.py": MANAGE.replace("shop.settings", "tenantsite.settings"),
        "tenantsite/__init__.py": "",
        "tenantsite/settings.py": SETTINGS,
        "tenantsite/admin_settings.py": ADMIN_SETTINGS,
        "tenantsite/urls.py": URLS,
        **_app("customers"),
        **_app("notes"),
        "customers/models.py": CUSTOMERS_MODELS_V1.format(extra=""),
        "customers/migrations/0001_initial.py": CUSTOMERS_0001,
        "notes/models.py": NOTES_MODELS[1],
        "notes/migrations/0001_initial.py": NOTES_0001,
    }
    v11: dict[str, str | None] = {
        "customers/models.py": CUSTOMERS_MODELS_V1.format(
            extra='    plan = models.CharField(max_length=20, default="free")\n'
        ),
        "customers/migrations/0002_client_plan.py": CUSTOMERS_0002,
        "notes/models.py": NOTES_MODELS[2],
        "notes/migrations/0002_body_label.py": NOTES_0002,
    }
    v2: dict[str, str | None] = {
        "notes/models.py": NOTES_MODELS[3],
        "notes/migrations/0003_comment.py": NOTES_0003,
    }
    return [("v1.0.0", v1), ("v1.1.0", v11), ("v2.0.0", v2)]


def create_tenant_code(schema: str) -> str:
    """Python for `manage.py shell -c`: a tenant (its schema migrated by django-tenants)."""
    return (
        "from customers.models import Client, Domain\n"
        f"c = Client(schema_name={schema!r}, name={schema.title()!r}); c.save()\n"
        f"Domain(domain='{schema}.localhost', tenant=c, is_primary=True).save()\n"
    )


# The same project with multi-type tenants (django-tenants' HAS_MULTI_TYPE_TENANTS): each
# tenant's `type` says which apps its schema holds, in TENANT_TYPES instead of SHARED_APPS and
# TENANT_APPS. Type "notes" has the notes app, type "plain" none of the tenant apps: its schema
# records notes' migrations (django-tenants records every app) but holds none of its tables.
MULTITYPE_SETTINGS = (
    SETTINGS
    + """
HAS_MULTI_TYPE_TENANTS = True
MULTI_TYPE_DATABASE_FIELD = "type"
TENANT_TYPES = {
    "public": {"APPS": SHARED_APPS, "URLCONF": "tenantsite.urls"},
    "notes": {"APPS": TENANT_APPS, "URLCONF": "tenantsite.urls"},
    "plain": {"APPS": ["django.contrib.contenttypes", "django_rollback"],
              "URLCONF": "tenantsite.urls"},
}
del SHARED_APPS, TENANT_APPS  # multi-type projects list their apps in TENANT_TYPES only
"""
)
TYPE_FIELD = '    type = models.CharField(max_length=20, default="notes")\n'


def multitype_release_files() -> list[tuple[str, dict[str, str | None]]]:
    """release_files() with the multi-type settings and a `type` on the tenant model."""
    releases = release_files()
    v1, v11 = releases[0][1], releases[1][1]
    v1["tenantsite/settings.py"] = MULTITYPE_SETTINGS
    v1["customers/models.py"] = CUSTOMERS_MODELS_V1.format(extra=TYPE_FIELD)
    v1["customers/migrations/0001_initial.py"] = CUSTOMERS_0001.replace(
        '("name", models.CharField(max_length=100)),',
        '("name", models.CharField(max_length=100)),\n'
        '            ("type", models.CharField(default="notes", max_length=20)),',
    )
    v11["customers/models.py"] = CUSTOMERS_MODELS_V1.format(
        extra=TYPE_FIELD + '    plan = models.CharField(max_length=20, default="free")\n'
    )
    return releases


def create_typed_tenant_code(schema: str, tenant_type: str) -> str:
    """create_tenant_code() for a multi-type tenant of `tenant_type`."""
    return create_tenant_code(schema).replace(
        f"name={schema.title()!r})", f"name={schema.title()!r}, type={tenant_type!r})"
    )
