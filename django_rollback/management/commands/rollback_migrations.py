from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import CommandParser

from ... import conf, services
from ...exceptions import RollbackError
from ...planning import RollbackPlan
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
            action="store_true",
            help="Dry run: print what would happen (steps, data lost, warnings); change nothing.",
        )
        parser.add_argument("--sql", action="store_true", help="Also print the SQL of the plan.")
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
            "--check",
            action="store_true",
            help="Drift check: exit 0 when the database matches the saved state of the current "
            "commit and that state is the latest; exit 2 with one line otherwise.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print one JSON document on stdout (with --list, --check, --fake or a rollback).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tag, commit = options["tag"], options["commit"]
        if tag is not None and commit is not None:
            raise RollbackError("Choose one target: -t/--tag or -c/--commit, not both.")
        wait = self.wait_seconds(options)
        targeted = tag is not None or commit is not None or options["fake"] or options["sql"]
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
        )
        if plan.is_noop:
            self.say(
                f"Nothing to do: {services.describe_state(plan.target)} is already "
                "the current state."
            )
            self._emit(plan, options, {"status": "nothing_to_do"})
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
                f"Dry run finished: {len(plan.steps)} migrations would be unapplied; "
                "nothing was changed."
            )
            self._emit(plan, options, {"status": "dry_run", "log_id": log.pk})
            return
        if plan.blockers:
            self.fail(
                "Refusing to roll back: " + " ".join(plan.blockers),
                document=self._document(plan, options, {"status": "refused"}),
            )
        self._preview(plan, detailed=False)
        try:
            result = services.execute(plan, progress=self._progress, wait=wait)
        except RollbackError as exc:
            self.fail(str(exc), document=self._document(plan, options, {"status": "failed"}))
        pruned = len(result.pruned)
        self.say(
            f"State for {services.describe_state(plan.target)} is now the latest saved state"
            + (f" ({pruned} newer state{'s' if pruned != 1 else ''} removed)." if pruned else "."),
        )
        if result.audit_error:
            self.warn(f"Warning: {result.audit_error}")
        self.say(
            f"Rollback successfully finished in {result.seconds:.2f}s (log entry {result.log.pk}).",
            style=self.style.SUCCESS,
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
            },
        )

    def _document(
        self, plan: RollbackPlan, options: dict[str, Any], result: dict[str, Any]
    ) -> dict[str, Any]:
        """The JSON document of a dry run or a rollback (schema: docs/json.md)."""
        document: dict[str, Any] = {
            "command": "rollback",
            "dry_run": bool(options["fake"]),
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
        if event.kind == "started":
            self.stdout.write(f"  Unapplying {event.step.label}...", ending="")
            self.stdout.flush()
        else:
            self.stdout.write(self.style.SUCCESS(f" OK ({timing})"))
            if self.logger:
                self.logger.info("Unapplying %s... OK (%s)", event.step.label, timing)

    def _preview(self, plan: RollbackPlan, *, detailed: bool) -> None:
        apps = len(plan.app_changes)
        self.say(
            f"Rollback from {services.describe_state(plan.current)} to "
            f"{services.describe_state(plan.target)}: {len(plan.steps)} migrations in {apps} "
            f"app{'s' if apps != 1 else ''} to unapply."
        )
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
        if not listing.states:
            self.say("No migration states saved yet: run save_migrations_state after migrate.")
            return
        self.say(f"Saved migration states in database '{options['database']}', newest first:")
        self.say(
            f"     {'ID':>5}  {'COMMIT':<10}  {'SAVED AT (UTC)':<19}  {'APPS':>4}  "
            f"{'MIGRATIONS':>10}  TAGS"
        )
        for state in listing.states:
            marker = "*" if state.commit == head else " "
            saved = state.saved_at.strftime("%Y-%m-%d %H:%M:%S")
            tags = ", ".join(state.tags) or "-"
            if state.unresolved:  # converted from 0.4.0 without its full set
                tags += f"  (not a rollback target: no file for {state.unresolved_labels})"
            self.say(
                f"  {marker}  {state.pk:>5}  {state.commit[:10]:<10}  {saved:<19}  "
                f"{state.app_count:>4}  {len(state.migrations):>10}  {tags}"
            )
        if head and any(state.commit == head for state in listing.states):
            self.say("  * = the current commit (HEAD)")
        elif head:
            self.say(f'  The current commit "{head}" has no saved state.')
        elif listing.head_error:
            self.say(f"  (the current commit is unknown: {listing.head_error})")
