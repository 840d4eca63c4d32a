"""Sphinx configuration of the django-rollback documentation (`make docs`)."""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

from django_rollback import __version__  # noqa: E402

project = "django-rollback"
author = "django-rollback developers"
copyright = "django-rollback developers"
version = release = __version__

extensions = ["myst_parser", "rollback_reference"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]

# Markdown: `{option}`-style roles, definition lists, and anchors for `#section` links.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"django-rollback {release}"
html_static_path: list[str] = []


# Examples of JSON documents elide parts with "…"; Pygments then falls back to plain text,
# which is what we want, not a build failure.
suppress_warnings = ["misc.highlighting_failure"]

# Keep "--fake" and {"sql": "..."} as typed: no en dashes, no curly quotes.
smartquotes = False
# A page may go from "#" to "###" (a small section inside a short page); that is style, not a
# broken build.
suppress_warnings += ["myst.header"]
