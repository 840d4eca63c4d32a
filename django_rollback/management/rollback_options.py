"""The options of rollback_migrations, grouped as its --help shows them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from .. import conf
from ..exceptions import RollbackError


def add_target_arguments(parser: CommandParser) -> None:
    """Which state to go to and what to do with it (--list first, as --help always showed)."""
    parser.add_argument("--list", action="store_true", help="List the saved states, newest first.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("-t", "--tag", help="Git tag of the state to roll back to.")
    target.add_argument(
        "-c",
        "--commit",
        help="Commit hash (or a unique prefix of 4+ characters) to roll back to.",
    )
    parser.add_argument(
        "--fake",
        "--dry-run",
        dest="fake",
        action="store_true",
        help="Dry run: print what would happen (steps, data lost, warnings); change nothing.",
    )
    parser.add_argument(
        "--sql",
        action="store_true",
        help="Only print the SQL of the plan, like sqlmigrate; change nothing. With --fake: "
        "the dry run and its SQL. To print it AND roll back, add --execute.",
    )
    parser.add_argument(
        "--execute",
        action="store_true",
        help="With --sql: roll back for real and print the SQL (never implied by --sql).",
    )
    parser.add_argument(
        "--no-input",
        "--noinput",
        dest="interactive",
        action="store_false",
        help="Do not ask for confirmation on a terminal (without one it never asks).",
    )
    parser.add_argument(
        "--current-commit",
        metavar="SHA",
        help="The commit deployed now (40 hex digits), for images without .git "
        f"(default: ${conf.COMMIT_ENV}, DJANGO_ROLLBACK['COMMIT'], then git).",
    )


def add_run_arguments(parser: CommandParser) -> None:
    """How a rollback runs: waiting, locks, archive, counts."""
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="If another rollback is running, wait this long for it instead of refusing.",
    )
    parser.add_argument(
        "--lock-timeout",
        type=float,
        metavar="SECONDS",
        help="Wait at most this long for each table lock, so the site's queries never queue "
        "behind the rollback for longer; 0 waits without limit "
        f"(default: DJANGO_ROLLBACK['LOCK_TIMEOUT'], {conf.DEFAULTS['LOCK_TIMEOUT']:g}).",
    )
    parser.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="When a table lock cannot be had in time, start over up to N more times, "
        "waiting longer each time (default: DJANGO_ROLLBACK['LOCK_RETRIES'], "
        f"{conf.DEFAULTS['LOCK_RETRIES']}).",
    )
    parser.add_argument(
        "--exact-counts",
        action="store_true",
        help="Count the rows of every affected table, however big; by default tables above "
        "DJANGO_ROLLBACK['ESTIMATE_ROWS_ABOVE'] rows show the catalog's estimate (≈).",
    )


def add_mode_arguments(parser: CommandParser) -> None:
    """The modes besides a rollback (check, rehearse, round trip, diff, approved), --json."""
    parser.add_argument(
        "--check",
        action="store_true",
        help="Drift check: exit 0 when the database matches the saved state of the current "
        "commit and that state is the latest; exit 2 with one line otherwise.",
    )
    parser.add_argument(
        "--no-archive",
        action="store_true",
        help="Do not keep the tables and columns this rollback drops (default: keep them "
        "for restore_rollback_archive, unless DJANGO_ROLLBACK['ARCHIVE'] is False).",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="Print one JSON document on stdout (with --list, --check, --fake or a rollback).",
    )
    parser.add_argument(
        "--rehearse",
        action="store_true",
        help="Dress rehearsal: run the whole rollback for real inside one transaction, time "
        "each step, then roll the transaction back; nothing changes but a log entry. "
        "PostgreSQL and SQLite only.",
    )
    parser.add_argument(
        "--round-trip",
        metavar="REF",
        help="CI check on a scratch database: migrate to the migrations of git REF, then to "
        "HEAD, roll back to REF with this tool, forward again, and compare the schemas "
        "each time; exit 1 and print every difference.",
    )
    parser.add_argument(
        "--diff",
        nargs=2,
        metavar=("REF1", "REF2"),
        help="Compare two saved states (each a tag or a commit prefix, as -t and -c take "
        "them): per app, the migrations applied in one and not the other, and the tables "
        "and columns they change, both ways. Changes nothing.",
    )

    parser.add_argument(
        "--approved",
        metavar="LOG_ID",
        help="Run the rollback request LOG_ID that was approved in the admin "
        "(DJANGO_ROLLBACK['APPROVALS']); any other request is refused.",
    )


def check(options: dict[str, Any]) -> None:
    """Refuse what contradicts itself, each with one line (an argparse error would print its
    usage too): bad numbers, and the options a mode runs without."""
    if options["lock_timeout"] is not None and options["lock_timeout"] < 0:
        raise RollbackError("--lock-timeout needs a number of seconds, 0 or more.")
    if options["retries"] is not None and options["retries"] < 0:
        raise RollbackError("--retries needs a number, 0 or more.")
    if options["execute"] and (not options["sql"] or options["fake"]):
        raise RollbackError(
            "--execute only goes with --sql (print the SQL and roll back); without it a "
            "rollback runs anyway, and --fake never executes."
        )
    others = is_targeted(options) or options["list"] or options["check"] or options["rehearse"]
    if options["approved"] is not None and others:
        raise RollbackError(
            "--approved runs the approved request as it is; drop the other options."
        )
    if options["approved"] is None and options["round_trip"] is not None and others:
        raise RollbackError("--round-trip runs on its own; drop the other options.")
    alone = options["approved"] is None and options["round_trip"] is None
    if alone and options["diff"] is not None and others:
        raise RollbackError("--diff only compares two states; drop the other options.")


def is_targeted(options: dict[str, Any]) -> bool:
    """A target or a preview was asked for."""
    chosen = options["tag"] is not None or options["commit"] is not None
    return chosen or bool(options["fake"]) or bool(options["sql"])


def refuse_combinations(options: dict[str, Any]) -> None:
    """The modes of one schema that exclude each other (a fleet checks its own)."""
    targeted = is_targeted(options)
    if options["rehearse"] and (options["fake"] or options["list"] or options["check"]):
        raise RollbackError("--rehearse runs the plan; drop --fake, --list and --check.")
    if options["list"] and (targeted or options["check"]):
        raise RollbackError(
            "--list only lists the saved states; drop -t, -c, --fake, --sql and --check."
        )
    if options["check"] and targeted:
        raise RollbackError("--check only checks; drop -t, -c, --fake and --sql.")
