from __future__ import annotations

import itertools
import logging
import sys
from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import ngettext

from ... import approvals, archive, conf, services
from ...exceptions import RollbackError, RollbackInterruptedError
from ...models import APPROVAL_BYPASSED, SHORT_COMMIT_LENGTH, RollbackLog
from ...planning import RollbackPlan
from .. import fleet_commands
from ..base import RollbackBaseCommand


class Command(RollbackBaseCommand):
    help = (
        "Roll the migrations of every app back to a saved state: the one of a tag (-t), of a "
        "commit prefix (-c), or by default the state saved before the current commit's. Run it "
        "from the newer code, which has the migration files to unapply. --fake shows the plan "
        "and changes nothing; --list shows the saved states."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--list", action="store_true", help="List the saved states, newest first."
        )
        parser.add_argument("-t", "--tag", help="Git tag of the state to roll back to.")
        parser.add_argument(
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
        fleet_commands.add_arguments(parser, rollback=True)

    def handle(self, *args: Any, **options: Any) -> None:
        tag, commit = options["tag"], options["commit"]
        if tag is not None and commit is not None:
            raise RollbackError("Choose one target: -t/--tag or -c/--commit, not both.")
        wait = self.wait_seconds(options)
        if options["lock_timeout"] is not None and options["lock_timeout"] < 0:
            raise RollbackError("--lock-timeout needs a number of seconds, 0 or more.")
        if options["retries"] is not None and options["retries"] < 0:
            raise RollbackError("--retries needs a number, 0 or more.")
        if options["execute"] and (not options["sql"] or options["fake"]):
            raise RollbackError(
                "--execute only goes with --sql (print the SQL and roll back); without it a "
                "rollback runs anyway, and --fake never executes."
            )
        targeted = tag is not None or commit is not None or options["fake"] or options["sql"]
        if options["approved"] is not None:
            if targeted or options["list"] or options["check"] or options["rehearse"]:
                raise RollbackError(
                    "--approved runs the approved request as it is; drop the other options."
                )
            self._run_approved(options, wait)
            return
        if options["round_trip"] is not None:
            if targeted or options["list"] or options["check"] or options["rehearse"]:
                raise RollbackError("--round-trip runs on its own; drop the other options.")
            self._round_trip(options)
            return
        if options["diff"] is not None:
            self._diff(options, targeted)
            return
        if fleet_commands.wanted(options, rollback=True):  # django-tenants: every schema
            fleet_commands.rollback(self, options, wait)
            return
        fleet_commands.recover(self, options)  # what a dead --atomic run left (fleet/recovery.py)
        if options["rehearse"] and (options["fake"] or options["list"] or options["check"]):
            raise RollbackError("--rehearse runs the plan; drop --fake, --list and --check.")
        if options["list"]:
            if targeted or options["check"]:
                raise RollbackError(
                    "--list only lists the saved states; drop -t, -c, --fake, --sql and --check."
                )
            self._list(options)
            return
        if options["check"]:
            if targeted:
                raise RollbackError("--check only checks; drop -t, -c, --fake and --sql.")
            self._check(options)
            return
        plan = services.plan_rollback(
            tag=tag,
            commit=commit,
            repo_path=options["path"],
            database=options["database"],
            with_sql=options["sql"],
            deployed_commit=options["current_commit"],
            archive=False if options["no_archive"] else None,
            exact_counts=options["exact_counts"],
        )
        if plan.is_noop:
            self.say(
                f"Nothing to do: {services.describe_state(plan.target)} is already "
                "the current state.",
                verbosity=0,
            )
            self._emit(plan, options, {"status": "nothing_to_do"})
            return
        if options["sql"] and not options["fake"] and not options["execute"]:
            self._print_sql(plan, options)
            return
        if options["fake"]:
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
            return
        if options["rehearse"]:
            self._rehearse(plan, options)
            return
        if plan.blockers:
            self.fail(
                "Refusing to roll back: " + " ".join(plan.blockers),
                document=self._document(plan, options, {"status": "refused"}),
            )
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
                progress=self._progress,
                wait=wait,
                on_wait=lambda: self.waiting_for_lock(options["database"], wait),
                lock_timeout=options["lock_timeout"],
                retries=options["retries"],
            )
        except RollbackInterruptedError:
            raise
        except RollbackError as exc:
            self._close_step_line()
            self.fail(str(exc), document=self._document(plan, options, {"status": "failed"}))
        pruned = len(result.pruned)
        removed = ngettext(
            " (%(count)d newer state removed).", " (%(count)d newer states removed).", pruned
        )
        self.say(
            f"State for {services.describe_state(plan.target)} is now the latest saved state"
            + (removed % {"count": pruned} if pruned else "."),
        )
        if result.audit_error:
            self.warn(f"Warning: {result.audit_error}")
        kept = result.log.archive or {}
        if kept.get("items"):
            self.say(
                f"Archived {len(kept['items'])} tables/columns ({kept['rows']} rows, "
                f"{archive.describe_size(kept['bytes'])}) in log entry {result.log.pk}: once "
                "a newer release has migrated them back, run restore_rollback_archive."
            )
        if self.verbosity >= 2:
            self._say_applied(plan.expected_after)
        self.say(
            f"Rollback successfully finished in {result.seconds:.2f}s (log entry {result.log.pk}).",
            style=self.style.SUCCESS,
            verbosity=0,
        )
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

    def _run_approved(self, options: dict[str, Any], wait: float) -> None:
        """--approved LOG_ID: the request's own plan, checked again, run here."""
        try:
            result = approvals.run_approved(
                options["approved"],
                database=options["database"],
                repo_path=options["path"],
                deployed_commit=options["current_commit"],
                progress=self._progress,
                wait=wait,
                on_wait=lambda: self.waiting_for_lock(options["database"], wait),
                lock_timeout=options["lock_timeout"],
                retries=options["retries"],
                on_start=self._starting_approved,
            )
        except RollbackInterruptedError:
            raise
        except RollbackError as exc:
            self._close_step_line()
            self.fail(str(exc), document={"command": "rollback", "approved": options["approved"]})
        log = result.log
        self.say(
            f"State for {services.describe_state(result.plan.target)} is now the latest saved "
            "state."
        )
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

    def _diff(self, options: dict[str, Any], targeted: bool) -> None:
        from ...compare import compare_refs, comparison_document, comparison_lines

        if targeted or options["list"] or options["check"] or options["rehearse"]:
            raise RollbackError("--diff only compares two states; drop the other options.")
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
        document = {
            "command": "round_trip",
            "ref": result.ref,
            "ref_commit": result.ref_sha,
            "head_commit": result.head_sha,
            "migrations_at_ref": result.at_ref,
            "migrations_at_head": result.at_head,
            "unapplied": result.unapplied,
            "after_rollback": result.after_rollback,
            "after_forward": result.after_forward,
        }
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
            result = services.execute(
                plan,
                progress=self._progress,
                wait=options["wait"],
                lock_timeout=options["lock_timeout"],
                rehearse=True,
            )
        except RollbackError as exc:
            self._close_step_line()
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
            self.stdout.write(self._summary(plan))
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
        self.say(f"-- {self._summary(plan)}", verbosity=2)
        for statement in plan.sql or []:
            self.say(statement, logging.DEBUG, verbosity=0)
        for blocker in plan.blockers:
            self.warn(f"Warning: this rollback would be refused: {blocker}")

    def _say_applied(self, applied: frozenset[tuple[str, str]]) -> None:
        self.say(f"Applied now ({services.migrations_text(len(applied))}):", verbosity=2)
        for app, names in itertools.groupby(sorted(applied), key=lambda key: key[0]):
            self.say(f"  {app}: {', '.join(name for _app, name in names)}", verbosity=2)

    def _document(
        self, plan: RollbackPlan, options: dict[str, Any], result: dict[str, Any]
    ) -> dict[str, Any]:
        """The JSON document of a dry run or a rollback (schema: docs/json.md)."""
        document: dict[str, Any] = {
            "command": "rollback",
            "dry_run": bool(options["fake"]) or (bool(options["sql"]) and not options["execute"]),
            "rehearsal": bool(options["rehearse"]),
            "plan": plan.as_dict(),
            "result": result,
        }
        if plan.sql is not None:
            document["plan"]["sql"] = plan.sql
        return document

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

    _line_open = False  # an "Unapplying ..." line waits for its outcome

    def _close_step_line(self) -> None:
        """End the "Unapplying ..." line that a failure cut short."""
        if self._line_open and not self.json_mode:
            self.stdout.write(self.style.ERROR(" failed"))
        self._line_open = False

    def _progress(self, event: services.StepEvent) -> None:
        # Django's "Unapplying app.name... OK", then the step's time, the steps done so far
        # and the time since the first step began.
        timing = (
            f"{event.seconds:.2f}s; {event.number}/{event.total} done, {event.elapsed:.2f}s elapsed"
        )
        if self.json_mode:
            if event.kind == "finished" and self.logger:
                self.logger.info("Unapplying %s... OK (%s)", event.step.label, timing)
            return
        if self.verbosity < 1:
            if event.kind == "finished" and self.logger:
                self.logger.info("Unapplying %s... OK (%s)", event.step.label, timing)
            if event.kind == "waiting" and self.logger:
                self.logger.warning(event.message)
            return
        self._line_open = event.kind == "started"
        if event.kind == "waiting":
            # The attempt was abandoned mid-line: end it, and say why and for how long.
            self.stdout.write(self.style.WARNING(" lock not available"))
            self.say(f"  {event.message}", logging.WARNING, self.style.WARNING)
            return
        if event.kind == "started":
            self.stdout.write(f"  Unapplying {event.step.label}...", ending="")
            self.stdout.flush()
        else:
            self.stdout.write(self.style.SUCCESS(f" OK ({timing})"))
            if self.logger:
                self.logger.info("Unapplying %s... OK (%s)", event.step.label, timing)

    def _summary(self, plan: RollbackPlan) -> str:
        apps = len(plan.app_changes)
        return (
            f"Rollback from {services.describe_state(plan.current)} to "
            f"{services.describe_state(plan.target)}: "
            + ngettext(
                "%(count)d migration in %(apps)s to unapply.",
                "%(count)d migrations in %(apps)s to unapply.",
                len(plan.steps),
            )
            % {
                "count": len(plan.steps),
                "apps": ngettext("%(count)d app", "%(count)d apps", apps) % {"count": apps},
            }
        )

    def _preview(self, plan: RollbackPlan, *, detailed: bool) -> None:
        self.say(self._summary(plan))
        for change in plan.app_changes:
            self.say(f"  {change.describe()}")
        if not plan.steps:
            self.say("No migrations to unapply; only the saved states change.")
        elif plan.all_or_nothing:
            self.say(f"All or nothing: the whole plan runs in one transaction ({plan.vendor}).")
        if detailed:
            if plan.steps:
                self.say("Steps, in order:")
            for number, step in enumerate(plan.steps, 1):
                self.say(f"  {number}. {step.label}")
                for operation in step.operations or ["(no operations)"]:
                    self.say(f"       {operation}")
                for note in step.notes:
                    self.say(f"       note: {note}")
                for lock in step.locks:
                    size = plan.tables.get(lock.table)
                    sized = f" [{size.describe()}]" if size else ""
                    self.say(f"       locks {lock.describe()}{sized}")
        for kept in plan.kept:
            self.say(f"Kept: {kept}")
        for warning in plan.warnings:
            self.say(f"Warning: {warning}", logging.WARNING, self.style.WARNING)
        if detailed:
            for blocker in plan.blockers:
                self.say(f"Blocked: {blocker}", logging.ERROR, self.style.ERROR)
        if plan.sql is not None:
            self.say("SQL of the plan:")
            for statement in plan.sql:
                self.say(statement, logging.DEBUG)

    def _list(self, options: dict[str, Any]) -> None:
        listing = services.list_states(
            repo_path=options["path"],
            database=options["database"],
            commit=options["current_commit"],
        )
        head = listing.head.sha if listing.head else None
        if self.json_mode:
            self.emit_json(
                {
                    "ok": True,
                    "command": "list",
                    "database": options["database"],
                    "current_commit": head,
                    "current_commit_error": listing.head_error,
                    "standing": {
                        "status": listing.standing.status,
                        "message": listing.standing.message,
                    }
                    if listing.standing
                    else None,
                    "states": [
                        {
                            "id": state.pk,
                            "commit": state.commit,
                            "tags": list(state.tags),
                            "saved_at": state.saved_at.isoformat(),
                            "apps": state.app_count,
                            "migrations": len(state.migrations),
                            "current": state.commit == head,
                            "unresolved": [list(key) for key in state.unresolved or []],
                        }
                        for state in listing.states
                    ],
                }
            )
            return
        standing = listing.standing
        if not listing.states:
            self.say(standing.message if standing else "No migration states saved yet.")
            return
        self.say(f"Saved migration states in database '{options['database']}', newest first:")
        self.say(
            f"     {'ID':>5}  {'COMMIT':<{SHORT_COMMIT_LENGTH}}  {'SAVED AT (UTC)':<19}  "
            f"{'APPS':>4}  {'MIGRATIONS':>10}  TAGS"
        )
        for state in listing.states:
            marker = "*" if state.commit == head else " "
            saved = state.saved_at.strftime("%Y-%m-%d %H:%M:%S")
            tags = ", ".join(state.tags) or "-"
            if state.unresolved:  # converted from 0.4.0 without its full set
                tags += f"  (not a rollback target: no file for {state.unresolved_labels})"
            self.say(
                f"  {marker}  {state.pk:>5}  {state.short_commit:<{SHORT_COMMIT_LENGTH}}  "
                f"{saved:<19}  {state.app_count:>4}  {len(state.migrations):>10}  {tags}"
            )
        if head and any(state.commit == head for state in listing.states):
            self.say("  * = the current commit (HEAD)")
        # Where the database stands, in the words of --check and the admin; when all is well
        # the star says it (and the JSON document carries the sentence).
        if standing is not None and not standing.ok:
            self.say(standing.message, style=self.style.WARNING, verbosity=0)
