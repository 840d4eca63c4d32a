"""rollback_migrations: argv → validated options → one method per mode → presenters."""

from __future__ import annotations

import itertools
import logging
import sys
from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import ngettext

from ... import approvals, services
from ...exceptions import RollbackError, RollbackInterruptedError
from ...models import APPROVAL_BYPASSED, RollbackLog
from ...planning import RollbackPlan
from ...presenters import documents, preview
from ...presenters.listing import state_table_lines
from ...presenters.text import describe_size, describe_state, migrations_text
from .. import fleet_commands, rollback_options
from ..base import RollbackBaseCommand
from ..progress import ProgressPrinter

LEVELS = {"warning": logging.WARNING, "error": logging.ERROR, "sql": logging.DEBUG}


class Command(RollbackBaseCommand):
    help = (
        "Roll the migrations of every app back to a saved state: the one of a tag (-t), of a "
        "commit prefix (-c), or by default the state saved before the current commit's. Run it "
        "from the newer code, which has the migration files to unapply. --fake shows the plan "
        "and changes nothing; --list shows the saved states."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        rollback_options.add_target_arguments(parser)
        rollback_options.add_run_arguments(parser)
        rollback_options.add_mode_arguments(parser)
        fleet_commands.add_arguments(parser, rollback=True)

    def handle(self, *args: Any, **options: Any) -> None:
        wait = self._validated(options)
        self.printer = ProgressPrinter(self)
        if options["approved"] is not None:
            return self._run_approved(options, wait)
        if options["round_trip"] is not None:
            return self._round_trip(options)
        if options["diff"] is not None:
            return self._diff(options)
        if fleet_commands.wanted(options, rollback=True):  # django-tenants: every schema
            return fleet_commands.rollback(self, options, wait)
        rollback_options.refuse_combinations(options)
        fleet_commands.recover(self, options)  # what a dead --atomic run left (fleet/recovery.py)
        with fleet_commands.schema_chosen(options):  # django-tenants: --schemas ONE
            return self._one_schema(options, wait)

    def _one_schema(self, options: dict[str, Any], wait: float) -> None:
        if options["list"]:
            return self._list(options)
        if options["check"]:
            return self._check(options)
        plan = self._plan(options)
        if plan.is_noop:
            return self._nothing_to_do(plan, options)
        if options["sql"] and not options["fake"] and not options["execute"]:
            return self._print_sql(plan, options)
        if options["fake"]:
            return self._dry_run(plan, options)
        if options["rehearse"]:
            return self._rehearse(plan, options)
        return self._roll_back(plan, options, wait)

    def _validated(self, options: dict[str, Any]) -> float:
        """Refuse what contradicts itself; the seconds to wait for a running rollback."""
        if options["tag"] is not None and options["commit"] is not None:
            raise RollbackError("Choose one target: -t/--tag or -c/--commit, not both.")
        wait = self.wait_seconds(options)
        rollback_options.check(options)
        return wait

    @staticmethod
    def _locks(options: dict[str, Any], wait: float) -> services.LockSettings:
        """--wait, --lock-timeout and --retries, else the settings (read inside the callers'
        `try`: a negative setting is refused like a failed run)."""
        return services.LockSettings.read(options["lock_timeout"], options["retries"], wait)

    def _plan(self, options: dict[str, Any]) -> RollbackPlan:
        return services.plan_rollback(
            tag=options["tag"],
            commit=options["commit"],
            repo_path=options["path"],
            database=options["database"],
            with_sql=options["sql"],
            deployed_commit=options["current_commit"],
            archive=False if options["no_archive"] else None,
            exact_counts=options["exact_counts"],
        )

    def _nothing_to_do(self, plan: RollbackPlan, options: dict[str, Any]) -> None:
        self.say(
            f"Nothing to do: {describe_state(plan.target)} is already the current state.",
            verbosity=0,
        )
        self._emit(plan, options, {"status": "nothing_to_do"})

    def _dry_run(self, plan: RollbackPlan, options: dict[str, Any]) -> None:
        self._preview(plan, detailed=True)
        if plan.blockers:
            self.fail(
                "Dry run: this rollback would be refused: " + " ".join(plan.blockers),
                document=self._document(plan, options, {"status": "refused"}),
            )
        log = services.record_dry_run(plan)
        self.say(
            "Dry run finished: "
            + ngettext(
                "%(count)d migration would be unapplied; nothing was changed.",
                "%(count)d migrations would be unapplied; nothing was changed.",
                len(plan.steps),
            )
            % {"count": len(plan.steps)},
            verbosity=0,
        )
        self._emit(plan, options, {"status": "dry_run", "log_id": log.pk})

    def _roll_back(self, plan: RollbackPlan, options: dict[str, Any], wait: float) -> None:
        if plan.blockers:
            self.fail(plan.refusal, document=self._document(plan, options, {"status": "refused"}))
        self._preview(plan, detailed=self.verbosity >= 2)
        if approvals.required():
            self.warn(
                "Warning: approvals are on (DJANGO_ROLLBACK['APPROVALS']); this rollback from "
                f'the command line goes around them, and its log entry says "{APPROVAL_BYPASSED}".'
            )
        if options["interactive"] and not self.json_mode and sys.stdin.isatty():
            self._confirm(plan)
        try:
            result = services.execute(
                plan,
                progress=self.printer,
                locks=self._locks(options, wait),
                on_wait=lambda: self.waiting_for_lock(options["database"], wait),
            )
        except RollbackInterruptedError:
            raise
        except RollbackError as exc:
            self.printer.close_step_line()
            self.fail(str(exc), document=self._document(plan, options, {"status": "failed"}))
        self._say_rolled_back(result)
        self._emit(
            plan,
            options,
            {
                "status": "succeeded",
                "log_id": result.log.pk,
                "seconds": round(result.seconds, 3),
                "pruned": [state["commit"] for state in result.pruned],
                "audit_error": result.audit_error,
                "archive": result.log.archive or None,
            },
        )

    def _say_rolled_back(self, result: services.RollbackResult) -> None:
        plan, pruned = result.plan, len(result.pruned)
        removed = ngettext(
            " (%(count)d newer state removed).", " (%(count)d newer states removed).", pruned
        )
        self.say(
            f"State for {describe_state(plan.target)} is now the latest saved state"
            + (removed % {"count": pruned} if pruned else "."),
        )
        if result.audit_error:
            self.warn(f"Warning: {result.audit_error}")
        kept = result.log.archive or {}
        if kept.get("items"):
            self.say(
                f"Archived {len(kept['items'])} tables/columns ({kept['rows']} rows, "
                f"{describe_size(kept['bytes'])}) in log entry {result.log.pk}: once "
                "a newer release has migrated them back, run restore_rollback_archive."
            )
        if self.verbosity >= 2:
            self._say_applied(plan.expected_after)
        self.say(
            f"Rollback successfully finished in {result.seconds:.2f}s (log entry {result.log.pk}).",
            style=self.style.SUCCESS,
            verbosity=0,
        )

    def _run_approved(self, options: dict[str, Any], wait: float) -> None:
        """--approved LOG_ID: the request's own plan, checked again, run here."""
        try:
            result = approvals.run_approved(
                options["approved"],
                database=options["database"],
                repo_path=options["path"],
                deployed_commit=options["current_commit"],
                progress=self.printer,
                locks=self._locks(options, wait),
                on_wait=lambda: self.waiting_for_lock(options["database"], wait),
                on_start=self._starting_approved,
            )
        except RollbackInterruptedError:
            raise
        except RollbackError as exc:
            self.printer.close_step_line()
            self.fail(str(exc), document={"command": "rollback", "approved": options["approved"]})
        log = result.log
        self.say(f"State for {describe_state(result.plan.target)} is now the latest saved state.")
        self.say(
            f"Rollback successfully finished in {result.seconds:.2f}s (log entry {log.pk}).",
            style=self.style.SUCCESS,
            verbosity=0,
        )
        self._emit(
            result.plan,
            options,
            {"status": "succeeded", "log_id": log.pk, "seconds": round(result.seconds, 3)},
        )

    def _starting_approved(self, plan: RollbackPlan, log: RollbackLog) -> None:
        self.say(
            f"Running rollback request {log.pk}, requested by {log.user} ({log.reason}) and "
            f"approved by {', '.join(log.approvers)}."
        )
        self._preview(plan, detailed=self.verbosity >= 2)

    def _diff(self, options: dict[str, Any]) -> None:
        from ...compare import compare_refs, comparison_document, comparison_lines

        ref1, ref2 = options["diff"]
        result = compare_refs(ref1, ref2, repo_path=options["path"], database=options["database"])
        for line in comparison_lines(result):
            self.say(line)
        if self.json_mode:
            self.emit_json({"ok": True, "command": "diff", **comparison_document(result)})

    def _round_trip(self, options: dict[str, Any]) -> None:
        from ...roundtrip import round_trip

        ref = options["round_trip"]
        result = round_trip(
            ref,
            repo_path=options["path"],
            database=options["database"],
            progress=lambda line: self.say(f"  {line}"),
        )
        document = documents.round_trip_document(result)
        if not result.ok:
            count = len(result.after_rollback) + len(result.after_forward)
            self.fail(
                f"Round trip {ref} → HEAD → {ref} → HEAD failed: {count} "
                f"difference{'s' if count != 1 else ''} (listed above).",
                document=document,
            )
        self.say(
            f"Round trip {ref} → HEAD → {ref} → HEAD passed: {result.unapplied} migrations "
            "rolled back and applied again, schemas identical.",
            style=self.style.SUCCESS,
        )
        if self.json_mode:
            self.emit_json({"ok": True, **document})

    def _rehearse(self, plan: RollbackPlan, options: dict[str, Any]) -> None:
        if plan.blockers:
            self.fail(
                "Refusing to rehearse: " + " ".join(plan.blockers),
                document=self._document(plan, options, {"status": "refused"}),
            )
        services.check_rehearsable(plan)  # refused here, before a single line is printed
        self._preview(plan, detailed=False)
        self.warn(
            "Warning: the rehearsal runs every step for real in one transaction; the locks "
            "the steps take (tables they alter, rows they change) are held until it ends, "
            "so other sessions using those tables wait until then."
        )
        try:
            result = services.rehearse(
                plan, progress=self.printer, locks=self._locks(options, options["wait"])
            )
        except RollbackError as exc:
            self.printer.close_step_line()
            self.fail(str(exc), document=self._document(plan, options, {"status": "failed"}))
        self.say(
            f"Rehearsal finished: {len(plan.steps)} migrations unapplied in "
            f"{result.seconds:.2f}s in total, then rolled back; nothing was changed "
            f"(log entry {result.log.pk}).",
            style=self.style.SUCCESS,
        )
        self._emit(
            plan,
            options,
            {
                "status": "rehearsed",
                "log_id": result.log.pk,
                "seconds": round(result.seconds, 3),
                "step_seconds": result.step_seconds,
            },
        )

    def _confirm(self, plan: RollbackPlan) -> None:
        """Ask on a terminal, as flush does. The preview above it shows the one-line summary
        and the data it drops (its warnings); with -v 0 they are shown here."""
        if self.verbosity < 1:
            self.stdout.write(preview.summary(plan))
            for step, loss in plan.data_loss:
                self.stdout.write(f"  {step.label}: {loss.describe()}")
        if not plan.data_loss:
            self.stdout.write("No table or column with data is dropped.")
        try:
            answer = input("Type 'yes' to roll back, anything else to cancel: ")
        except EOFError:
            answer = ""
        if answer.strip() != "yes":
            self.fail("Rollback cancelled: nothing was changed.")

    def _print_sql(self, plan: RollbackPlan, options: dict[str, Any]) -> None:
        """--sql alone: the SQL the rollback would run, and nothing else (like sqlmigrate)."""
        if self.json_mode:
            self.emit_json({"ok": True, **self._document(plan, options, {"status": "sql"})})
            return
        self.say(f"-- {preview.summary(plan)}", verbosity=2)
        for statement in plan.sql or []:
            self.say(statement, logging.DEBUG, verbosity=0)
        for blocker in plan.blockers:
            self.warn(f"Warning: this rollback would be refused: {blocker}")

    def _say_applied(self, applied: frozenset[tuple[str, str]]) -> None:
        self.say(f"Applied now ({migrations_text(len(applied))}):", verbosity=2)
        for app, names in itertools.groupby(sorted(applied), key=lambda key: key[0]):
            self.say(f"  {app}: {', '.join(name for _app, name in names)}", verbosity=2)

    def _document(
        self, plan: RollbackPlan, options: dict[str, Any], result: dict[str, Any]
    ) -> dict[str, Any]:
        dry_run = bool(options["fake"]) or (bool(options["sql"]) and not options["execute"])
        return documents.plan_document(
            plan, dry_run=dry_run, rehearsal=bool(options["rehearse"]), result=result
        )

    def _emit(self, plan: RollbackPlan, options: dict[str, Any], result: dict[str, Any]) -> None:
        if self.json_mode:
            self.emit_json({"ok": True, **self._document(plan, options, result)})

    def _check(self, options: dict[str, Any]) -> None:
        report = services.check_drift(
            repo_path=options["path"],
            database=options["database"],
            commit=options["current_commit"],
        )
        if not report.ok:
            self.fail(report.message, 2, {"command": "check", **report.as_dict()})
        self.say(report.message, style=self.style.SUCCESS)
        if self.json_mode:
            self.emit_json({"command": "check", **report.as_dict()})

    def _preview(self, plan: RollbackPlan, *, detailed: bool) -> None:
        for line in preview.preview_lines(plan, detailed=detailed):
            if line.kind == "info":
                self.say(line.text)
            elif line.kind == "sql":
                self.say(line.text, logging.DEBUG)
            else:
                style = self.style.WARNING if line.kind == "warning" else self.style.ERROR
                self.say(line.text, LEVELS[line.kind], style)

    def _list(self, options: dict[str, Any]) -> None:
        listing = services.list_states(
            repo_path=options["path"],
            database=options["database"],
            commit=options["current_commit"],
        )
        if self.json_mode:
            self.emit_json(documents.list_document(listing, options["database"]))
            return
        standing = listing.standing
        if not listing.states:
            self.say(standing.message if standing else "No migration states saved yet.")
            return
        for line in state_table_lines(listing, options["database"]):
            self.say(line)
        # Where the database stands, in the words of --check and the admin; when all is well
        # the star says it (and the JSON document carries the sentence).
        if standing is not None and not standing.ok:
            self.say(standing.message, style=self.style.WARNING, verbosity=0)
