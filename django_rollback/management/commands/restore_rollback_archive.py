from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ... import archive, fleet, services
from ...conf import short_commit
from ...exceptions import RollbackError
from ...presenters.outcomes import restore_item_line, restore_preview_sentence, restored_sentence
from .. import fleet_commands
from ..base import RollbackBaseCommand


class Command(RollbackBaseCommand):
    help = (
        "Put back the rows and column values that a rollback archived, once the newer release "
        "is deployed again (its migrations re-created the tables and columns). Without LOG_ID: "
        "the most recent archive that can be restored. --fake shows what would come back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("log_id", nargs="?", type=int, help="Rollback log entry id.")
        parser.add_argument(
            "--fake", action="store_true", help="Show what would be restored; change nothing."
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--list", action="store_true", help="List the archives.")
        mode.add_argument("--purge", type=int, metavar="LOG_ID", help="Drop this archive.")
        mode.add_argument(
            "--purge-older-than",
            type=float,
            metavar="DAYS",
            help="Drop the archives of rollbacks older than this many days.",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON document.")
        group = parser.add_argument_group(
            "django-tenants",
            "Each schema keeps its own archives; without these options, the public schema's.",
        )
        group.add_argument(
            "--schemas",
            metavar="A,B",
            help="Restore in each of these schemas; --list, --purge and LOG_ID take one name.",
        )
        group.add_argument(
            "--tenants-only", action="store_true", help="Restore in every tenant schema."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        database = options["database"]
        chosen = [options["list"], options["purge"] is not None]
        chosen.append(options["purge_older_than"] is not None)
        if sum(chosen) > 1 or (any(chosen) and (options["log_id"] or options["fake"])):
            raise RollbackError(
                "Choose one: restore [LOG_ID] [--fake], --list, --purge LOG_ID or "
                "--purge-older-than DAYS."
            )
        services.ready_connection(database)
        schemas = fleet_commands.selection(options)
        if not schemas.narrowed:
            return self._run_mode(database, options)
        if any(chosen) or options["log_id"]:  # a log id or a listing belongs to one schema
            with fleet.on_schema(fleet_commands.one_schema(database, schemas)):
                return self._run_mode(database, options)
        return self._restore_schemas(database, schemas, options["fake"])

    def _run_mode(self, database: str, options: dict[str, Any]) -> None:
        if options["list"]:
            self._list(database)
        elif options["purge"] is not None:
            log = archive.find_log(database, options["purge"])
            dropped = archive.purge(log)
            self.say(f"Archive of log entry {log.pk} purged ({dropped} tables dropped).")
            if self.json_mode:
                self.emit_json({"ok": True, "command": "purge", "purged": [log.pk]})
        elif options["purge_older_than"] is not None:
            if options["purge_older_than"] < 0:
                raise RollbackError("--purge-older-than needs a number of days, 0 or more.")
            purged = archive.purge_older_than(options["purge_older_than"], database)
            ids = ", ".join(str(log.pk) for log in purged) or "none"
            self.say(f"Purged {len(purged)} archives (log entries: {ids}).")
            if self.json_mode:
                self.emit_json(
                    {"ok": True, "command": "purge", "purged": [log.pk for log in purged]}
                )
        else:
            self._restore(database, options["log_id"], options["fake"])

    def _restore(self, database: str, log_id: int | None, fake: bool) -> None:
        log = archive.find_archive(database, log_id)
        result = archive.restore(log, fake=fake)
        self.say(
            f"Archive of log entry {log.pk} "
            f"({short_commit(log.from_commit)} → {short_commit(log.to_commit)}"
            f"{', rolled back ' + log.started_at.strftime('%Y-%m-%d %H:%M') + ' UTC'}):"
        )
        for outcome in result.outcomes:
            self.say(f"  {restore_item_line(outcome, fake=fake)}")
        if fake:
            self.say(restore_preview_sentence(result))
        else:
            self.say(
                f"{restored_sentence(result)} (log entry {log.pk}).",
                style=self.style.SUCCESS,
            )
        if self.json_mode:
            self.emit_json({"ok": True, "command": "restore", **result.as_dict()})

    def _restore_schemas(self, database: str, schemas: fleet.Selection, fake: bool) -> None:
        """One line per schema, a summary; exit 1 when a schema failed."""

        def said(outcome: fleet.TargetRestore) -> None:
            name = outcome.target.name
            if outcome.status == "failed":
                self.say(f"{name}: failed: {outcome.error}", err=True, verbosity=0)
            elif outcome.status == "nothing":
                self.say(f"{name}: nothing to restore (no archive kept).")
            else:
                assert outcome.result is not None
                result = outcome.result
                self.say(
                    f"{name}: "
                    + (
                        restore_preview_sentence(result)
                        if fake
                        else f"{restored_sentence(result)} (log entry {result.log.pk})."
                    )
                )

        outcomes = fleet.restore_fleet(database, schemas, fake=fake, on_target=said)
        done = [o for o in outcomes if o.status == "restored"]
        failed = [o for o in outcomes if o.status == "failed"]
        line = (
            f"{'Dry run: would restore' if fake else 'Restored'} the archives of {len(done)} of "
            f"{len(outcomes)} schema{'s' if len(outcomes) != 1 else ''}"
            f" ({len(outcomes) - len(done) - len(failed)} had nothing to restore)."
        )
        document = {"command": "restore", "targets": [o.as_dict() for o in outcomes]}
        if failed:
            self.fail(f"{line} Failed: {', '.join(o.target.name for o in failed)}.", 1, document)
        self.say(line, style=self.style.SUCCESS, verbosity=0)
        if self.json_mode:
            self.emit_json({"ok": True, **document})

    def _list(self, database: str) -> None:
        logs = archive.list_archives(database)
        rows = [archive.summary(log) for log in logs]
        if self.json_mode:
            self.emit_json({"ok": True, "command": "list", "archives": rows})
            return
        if not rows:
            self.say("No archives: no rollback has kept data yet.")
            return
        self.say(f"Archives in database '{database}', newest first:")
        self.say(
            f"  {'LOG':>5}  {'FROM → TO':<23}  {'TABLES':>6}  {'COLUMNS':>7}  "
            f"{'ROWS':>9}  {'SIZE':>10}  STATUS"
        )
        for row in rows:
            self.say(
                f"  {row['log_id']:>5}  {short_commit(row['from'])} → {short_commit(row['to'])}  "
                f"{row['tables']:>6}  {row['columns']:>7}  {row['rows']:>9}  "
                f"{archive.describe_size(row['bytes']):>10}  {row['status']}"
            )
