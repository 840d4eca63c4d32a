"""The process that runs a rollback started from the admin (see background.py):

    python -m django_rollback.runner LOG_ID DATABASE

with DJANGO_SETTINGS_MODULE set, as the admin starts it. Exit status 0 when it succeeded.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit():
        print("usage: python -m django_rollback.runner LOG_ID DATABASE", file=sys.stderr)
        return 2
    import django

    django.setup()  # before anything imports models
    from .background import run_queued

    return run_queued(int(argv[0]), argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
