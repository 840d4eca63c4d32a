"""The DJANGO_ROLLBACK settings dict; every key is optional."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Where the git repository lives; git is searched upwards from here.
    "REPO_PATH": None,
}


def get_setting(name: str) -> Any:
    return getattr(settings, "DJANGO_ROLLBACK", {}).get(name, DEFAULTS[name])


def repo_path() -> Path:
    """REPO_PATH, else settings.BASE_DIR when set, else the current directory."""
    configured = get_setting("REPO_PATH") or getattr(settings, "BASE_DIR", None) or os.getcwd()
    return Path(configured)
