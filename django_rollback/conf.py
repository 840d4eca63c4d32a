"""The DJANGO_ROLLBACK settings dict; every key is optional."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Where the git repository lives; git is searched upwards from here.
    "REPO_PATH": None,
    # The deployed commit and its tags, for images without .git (flags and the environment
    # variables below take precedence).
    "COMMIT": None,
    "TAGS": None,
    # Keep what a rollback drops (tables, columns) in an archive in the same database, so
    # restore_rollback_archive can put it back; `rollback_migrations --no-archive` opts out
    # for one run.
    "ARCHIVE": True,
    # Reviewed reverse overrides for irreversible migrations, usually third-party ones:
    # {"app_label.migration_name": "noop" | "dotted.path.to.function" | {"sql": "..."}}.
    "REVERSE": {},
    # Each attempt of a rollback waits at most this long (seconds) for a table lock, so the
    # site's queries never queue behind it for longer; 0 waits without limit.
    "LOCK_TIMEOUT": 2.0,
    # Attempts after the first when a table lock could not be had in time, and the wait
    # before the first of them (doubled each time, at most 30 s).
    "LOCK_RETRIES": 5,
    "LOCK_RETRY_DELAY": 2.0,
    # The rollback lock on PostgreSQL: "session" (an advisory lock held by the connection),
    # "transaction" (held by the rollback's transaction: works behind PgBouncer in
    # transaction-pooling mode), or "auto": "transaction" when the database has
    # DISABLE_SERVER_SIDE_CURSORS, which Django asks for behind such a pooler.
    "LOCK_SCOPE": "auto",
    # The preview counts rows exactly up to this many (by the catalog's estimate); bigger
    # tables show the estimate, marked "≈", so the preview never scans a huge table.
    "ESTIMATE_ROWS_ABOVE": 1_000_000,
    # Approvals by a second person (docs/approvals.md): 0 = off; N = a rollback started from
    # the admin is a request that runs only once N users with approve_rollback, none of them
    # its requester, approved it. The command line is not blocked (its log entry says so).
    "APPROVALS": 0,
    # A request not approved within this many seconds expires.
    "APPROVAL_TTL": 3600,
    # E-mail and webhook notifications of saves, rollbacks and restores (notify.py,
    # docs/notifications.md); None: none are sent.
    "NOTIFY": None,
}

# Environment variables read before the settings: set them at build or deploy time.
COMMIT_ENV = "DJANGO_ROLLBACK_COMMIT"
TAGS_ENV = "DJANGO_ROLLBACK_TAGS"  # comma-separated; empty means "no tags"

#: How many characters of a commit hash every message, list and admin page shows.
SHORT_COMMIT_LENGTH = 10


#: Commits that share a prefix are listed longer, so that the user can tell them apart.
CANDIDATE_LENGTH = 12


def short_commit(sha: str) -> str:
    return sha[:SHORT_COMMIT_LENGTH]


def get_setting(name: str) -> Any:
    return getattr(settings, "DJANGO_ROLLBACK", {}).get(name, DEFAULTS[name])


def repo_path() -> Path:
    """REPO_PATH, else settings.BASE_DIR when set, else the current directory."""
    configured = get_setting("REPO_PATH") or getattr(settings, "BASE_DIR", None) or os.getcwd()
    return Path(configured)


def split_tags(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Tags from a comma-separated string or a list, stripped, empty ones dropped, sorted."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(sorted({str(item).strip() for item in items if str(item).strip()}))


def approvals_required() -> int:
    """How many approvals a rollback from the admin needs (0: none, it runs at once)."""
    return max(int(get_setting("APPROVALS") or 0), 0)
