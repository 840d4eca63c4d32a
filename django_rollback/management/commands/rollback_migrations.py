from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import CommandParser

from ... import services
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

    def handle(self, *args: Any, **options: Any) -> None:
        tag, commit = options["tag"], options["commit"]
        if tag is not None and commit is not None:
            raise RollbackError("Choose one target: -t/--tag or -c/--commit, not both.")
        if options["list"]:
            if tag is not None or commit is not None or options["fake"] or options["sql"]:
                raise RollbackError(
                    "--list only lists the saved states; drop -t, -c, --fake and --sql."
                )
            self._list(options)
            return
        plan = services.plan_rollback(
            tag=tag,
            commit=commit,
            repo_path=options["path"],
            database=options["database"],
            with_sql=options["sql"],
        )
        if plan.is_noop:
            self.say(
                f"Nothing to do: {services.describe_state(plan.target)} is already "
                "the current state."
            )
            return
        if options["fake"]:
            self._preview(plan, detailed=True)
            if plan.blockers:
                raise RollbackError(
                    "Dry run: this rollback would be refused: " + " ".join(plan.blockers)
                )
            services.record_dry_run(plan)
            self.say(
                f"Dry run finished: {len(plan.steps)} migrations would be unapplied; "
                "nothing was changed."
            )
            return
        if plan.blockers:
            raise RollbackError("Refusing to roll back: " + " ".join(plan.blockers))
        self._preview(plan, detailed=False)
        result = services.execute(plan, progress=self._progress)
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

    def _progress(self, event: services.StepEvent) -> None:
        if event.kind == "started":
            self.stdout.write(f"  Unapplying {event.step.label}...", ending="")
            self.stdout.flush()
        else:
            self.stdout.write(self.style.SUCCESS(f" OK ({event.seconds:.2f}s)"))
            if self.logger:
                self.logger.info("Unapplying %s... OK (%.2fs)", event.step.label, event.seconds)

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
        listing = services.list_states(repo_path=options["path"], database=options["database"])
        if not listing.states:
            self.say("No migration states saved yet: run save_migrations_state after migrate.")
            return
        head = listing.head.sha if listing.head else None
        self.say(f"Saved migration states in database '{options['database']}', newest first:")
        self.say(
            f"     {'ID':>5}  {'COMMIT':<10}  {'SAVED AT (UTC)':<19}  {'APPS':>4}  "
            f"{'MIGRATIONS':>10}  TAGS"
        )
        for state in listing.states:
            marker = "*" if state.commit == head else " "
            apps = len({app for app, _ in state.migrations})
            saved = state.saved_at.strftime("%Y-%m-%d %H:%M:%S")
            tags = ", ".join(state.tags) or "-"
            self.say(
                f"  {marker}  {state.pk:>5}  {state.commit[:10]:<10}  {saved:<19}  {apps:>4}  "
                f"{len(state.migrations):>10}  {tags}"
            )
        if head and any(state.commit == head for state in listing.states):
            self.say("  * = the current commit (HEAD)")
        elif head:
            self.say(f'  The current commit "{head}" has no saved state.')
        elif listing.head_error:
            self.say(f"  (the current commit is unknown: {listing.head_error})")
