"""Settings for the in-process tests; DATABASE_URL picks the backend (default SQLite)."""

from pathlib import Path

import environ

env = environ.Env()
BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'tests.sqlite3'}")}
# A file, not memory: the admin's live server gets a connection of its own, and the tests can
# read the schema through the sqlite3 driver. TEST_SQLITE_NAME keeps two runs at once (CI's
# Django 5.2 and 6.1 legs) on files of their own.
SQLITE_TEST_NAME = env("TEST_SQLITE_NAME", default="test-db")
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f"{SQLITE_TEST_NAME}.sqlite3")}
# A second database, as a project that routes nothing there yet would have: the admin tests
# save and roll back its states separately from the default one.
DATABASES["other"] = {**DATABASES["default"], "NAME": f"{DATABASES['default']['NAME']}_other"}
if DATABASES["other"]["ENGINE"].endswith("sqlite3"):
    DATABASES["other"]["TEST"] = {"NAME": str(BASE_DIR / f"{SQLITE_TEST_NAME}-other.sqlite3")}
else:
    DATABASES["other"]["TEST"] = {}
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rollback",
    "tests.panel.inventory",
    "tests.panel.ledger",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
# Django 6.1 sends mail through MAILERS and warns on every message without it (Django 2028 has
# no default mailer); 5.2 ignores the setting and reads EMAIL_BACKEND. Either way the test
# runner swaps in its in-memory outbox; locmem also keeps other processes from sending.
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
