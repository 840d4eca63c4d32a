from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import CommandParser

from ... import conf, services
from ...planning import label
from ..base import RollbackBaseCommand


class Command(RollbackBaseCommand):
    help = (
        "Save which migrations of every app are applied, as the state of the current git "
        "commit. Run it after `migrate` on every deploy; saving the same commit again is fine. "
        "Warns when the commit was saved before but is not the latest state."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--log-full-data", action="store_true", help="Also print every applied migration."
        )
        parser.add_argument(
            "--log-diff",
            action="store_true",
            help="Also print what changed since the previous state.",
        )
        parser.add_argument(
            "--commit",
            help="The commit being deployed (40 hex digits), for images without .git "
            f"(default: ${conf.COMMIT_ENV}, DJANGO_ROLLBACK['COMMIT'], then git).",
        )
        parser.add_argument(
            "--tag",
            action="append",
            dest="tags",
            metavar="TAG",
            help=f"A tag of that commit; repeat for several (default: ${conf.TAGS_ENV}, "
            "DJANGO_ROLLBACK['TAGS'], then git).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=services.SAVE_WAIT_SECONDS,
            metavar="SECONDS",
            help="How long to wait for a running rollback before giving up "
            f"(default: {services.SAVE_WAIT_SECONDS:g}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        wait = self.wait_seconds(options)
        result = services.save_state(
            repo_path=options["path"],
            database=options["database"],
            commit=options["commit"],
            tags=options["tags"],
            wait=wait,
        )
        state = services.describe_state(result.state)
        if result.created:
            self.say(f"State successfully created for {state}.", style=self.style.SUCCESS)
        elif result.updated:
            self.say(
                f"State updated for {state}: the applied migrations changed since it was saved.",
                style=self.style.SUCCESS,
            )
        else:
            self.say(f"State for {state} was already saved.")
        if result.tags_changed and not result.created:
            self.say(f"Tags of {state} refreshed.")
        if not result.is_latest:
            self.warn(
                f"Warning: {state} is not the latest saved state (the latest is "
                f"{services.describe_state(result.latest)}). Was an older release deployed "
                "without rollback_migrations? Check the applied migrations before rolling back."
            )
        if options["log_full_data"]:
            data = [tuple(pair) for pair in result.state.migrations]
            self.say(f"Data = {data}", logging.DEBUG)
        if options["log_diff"]:
            self._say_diff(result)

    def _say_diff(self, result: services.SaveResult) -> None:
        if result.previous is None:
            self.say("No earlier state to compare with.")
            return
        if not (result.added or result.removed):
            self.say(
                f"No difference from the previous state "
                f"({services.describe_state(result.previous)}): nothing to roll back."
            )
            return
        self.say(
            f"Difference from the previous state ({services.describe_state(result.previous)}): "
            f"{len(result.added)} added, {len(result.removed)} removed."
        )
        for key in sorted(result.added):
            self.say(f"  + {label(key)}")
        for key in sorted(result.removed):
            self.say(f"  - {label(key)}")
