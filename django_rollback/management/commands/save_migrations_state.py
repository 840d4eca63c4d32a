from __future__ import annotations

import itertools
import logging
from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import ngettext

from ... import conf, services
from ...conf import short_commit
from ...exceptions import RollbackError
from ...planning import label
from ...presenters.outcomes import not_latest_warning, save_outcome
from .. import fleet_commands
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
            help="A tag of that commit, added to git's tags of it; repeat for several "
            f"(default: ${conf.TAGS_ENV}, DJANGO_ROLLBACK['TAGS'], which replace git's; then "
            "git's).",
        )
        parser.add_argument(
            "--replace-tags",
            action="store_true",
            help="Save only the --tag values, instead of adding them to git's tags.",
        )
        parser.add_argument(
            "--allow-unapplied",
            action="store_true",
            help="Save even though migration files on disk are not applied (normally refused: "
            "right after a rollback it would record the older migrations under the newer "
            "commit).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=services.SAVE_WAIT_SECONDS,
            metavar="SECONDS",
            help="How long to wait for a running rollback before giving up "
            f"(default: {services.SAVE_WAIT_SECONDS:g}).",
        )
        parser.add_argument(
            "--require-rollback",
            action="store_true",
            help="Exit 2 when a rollback to the previous state would be impossible (the state "
            "is saved all the same): a gate for deploy pipelines.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help=(
                "Print one JSON document on stdout: the save, its rollback readiness and "
                "any archive that can be restored now."
            ),
        )
        fleet_commands.add_arguments(parser, rollback=False)

    def handle(self, *args: Any, **options: Any) -> None:
        wait = self.wait_seconds(options)
        if options["replace_tags"] and not options["tags"]:
            raise RollbackError("--replace-tags needs the tags to save: give --tag TAG.")
        if fleet_commands.wanted(options, rollback=False):  # django-tenants: every schema
            fleet_commands.save(
                self,
                options,
                repo_path=options["path"],
                commit=options["commit"],
                tags=options["tags"],
                wait=wait,
                replace_tags=options["replace_tags"],
                allow_unapplied=options["allow_unapplied"],
            )
            return
        result = services.save_state(
            repo_path=options["path"],
            database=options["database"],
            commit=options["commit"],
            tags=options["tags"],
            wait=wait,
            replace_tags=options["replace_tags"],
            allow_unapplied=options["allow_unapplied"],
            on_wait=lambda: self.waiting_for_lock(options["database"], wait),
        )
        self._say_outcome(result)
        if options["log_full_data"]:
            data = [tuple(pair) for pair in result.state.migrations]
            self.say(f"Data = {data}", logging.DEBUG)
        if options["log_diff"]:
            self._say_diff(result)
        self._say_readiness(result, options)

    def _say_outcome(self, result: services.SaveResult) -> None:
        """What was saved, and what the operator should know about it."""
        state = services.describe_state(result.state)
        if result.tag_warning:
            self.warn(f"Warning: {result.tag_warning}")
        if result.unapplied:
            self.warn(
                "Warning: saved although "
                + ngettext(
                    "%(count)d migration on disk is not applied (--allow-unapplied).",
                    "%(count)d migrations on disk are not applied (--allow-unapplied).",
                    len(result.unapplied),
                )
                % {"count": len(result.unapplied)}
            )
        if self.verbosity >= 2:
            self._say_applied(result)
        style = self.style.SUCCESS if result.created or result.updated else None
        self.say(save_outcome(result), style=style, verbosity=0)
        if result.tags_changed and not result.created:
            self.say(f"Tags of {state} refreshed.")
        if not result.is_latest:
            self.warn(f"Warning: {not_latest_warning(result)}")
        if result.restorable is not None:
            log = result.restorable
            self.say(
                f"The archive of rollback log entry {log.pk} ({short_commit(log.from_commit)} → "
                f"{short_commit(log.to_commit)}) can be restored now: run restore_rollback_archive "
                f"{log.pk}."
            )

    def _say_readiness(self, result: services.SaveResult, options: dict[str, Any]) -> None:
        """Whether this deploy could be rolled back; --require-rollback makes it the gate."""
        readiness = result.readiness
        document = self._document(result)
        if readiness is not None and readiness.possible:
            self.say(readiness.message)
        elif readiness is not None and options["require_rollback"]:
            # The state is saved; the deploy gate fails with the reason as its one line.
            reason = readiness.message.removeprefix("Warning: a ")
            self.fail(f"A {reason} (--require-rollback)", 2, document)
        elif readiness is not None:
            self.warn(readiness.message)
        if self.json_mode:
            self.emit_json({"ok": True, **document})

    def _document(self, result: services.SaveResult) -> dict[str, Any]:
        """The JSON document of a save (schema: docs/json.md)."""
        state = result.state
        return {
            "command": "save",
            "state": {
                "id": state.pk,
                "commit": state.commit,
                "tags": list(state.tags),
                "saved_at": state.saved_at.isoformat(),
                "migrations": len(state.migrations),
            },
            "created": result.created,
            "updated": result.updated,
            "is_latest": result.is_latest,
            "previous": (
                {
                    "id": result.previous.pk,
                    "commit": result.previous.commit,
                    "tags": list(result.previous.tags),
                }
                if result.previous
                else None
            ),
            "readiness": result.readiness.as_dict() if result.readiness else None,
            # The log entry whose archive restore_rollback_archive can restore now.
            "restorable_archive": result.restorable.pk if result.restorable else None,
        }

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

    def _say_applied(self, result: services.SaveResult) -> None:
        """-v 2: the full applied set, app by app."""
        applied = sorted(result.state.migration_set)
        self.say(f"Applied ({services.migrations_text(len(applied))}):", verbosity=2)
        for app, names in itertools.groupby(applied, key=lambda key: key[0]):
            self.say(f"  {app}: {', '.join(name for _app, name in names)}", verbosity=2)
