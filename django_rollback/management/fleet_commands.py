"""The fleet side of save_migrations_state and rollback_migrations (django-tenants schemas):
the options both add, and how their results are shown. The work is in django_rollback.fleet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import CommandParser
from django.db import DatabaseError, connections
from django.utils.connection import ConnectionDoesNotExist

from .. import fleet, services
from ..exceptions import RollbackError
from ..presenters.text import describe_group_loss
from .base import RollbackBaseCommand

# rollback_migrations modes that act on one schema: public, or the one --schemas names.
SINGLE_SCHEMA_MODES = ("list", "check", "rehearse", "sql", "round_trip")


def add_arguments(parser: CommandParser, *, rollback: bool) -> None:
    group = parser.add_argument_group(
        "django-tenants", "Every schema is a target: public and each tenant (docs/tenants.md)."
    )
    group.add_argument(
        "--schemas", metavar="A,B", help="Only these schemas (comma-separated names)."
    )
    kind = group.add_mutually_exclusive_group()
    kind.add_argument("--tenants-only", action="store_true", help="Only the tenant schemas.")
    kind.add_argument("--shared-only", action="store_true", help="Only the public schema.")
    group.add_argument(
        "--all-databases",
        action="store_true",
        help=(
            "Every alias of DATABASES that has saved states (routers respected), in one run "
            "and one report: the schemas of django-tenants aliases, the others whole."
            if rollback
            else "Every alias of DATABASES where django_rollback migrates (routers "
            "respected), in one run and one report: the schemas of django-tenants aliases, "
            "the others whole."
        ),
    )
    if rollback:
        group.add_argument(
            "--jobs",
            type=int,
            default=fleet.default_jobs(),
            metavar="N",
            help="Roll back this many tenant schemas at once, each in a process of its own "
            f"(default: min(4, CPU count), {fleet.default_jobs()} here).",
        )
        group.add_argument(
            "--atomic",
            action="store_true",
            help="Every schema or none (PostgreSQL two-phase commit): each one's rollback is "
            "prepared, and committed only when all are; a failure anywhere rolls every one "
            "back. Needs max_prepared_transactions above 0.",
        )
        group.add_argument(
            "--skip-unsaved",
            action="store_true",
            help="Roll back the other schemas when some have no saved state at the target "
            "(tenants created after it), and leave those as they are; refused otherwise.",
        )


def selection(options: dict[str, Any]) -> fleet.Selection:
    return fleet.Selection(
        schemas=fleet.parse_schemas(options.get("schemas")),
        tenants_only=bool(options.get("tenants_only")),
        shared_only=bool(options.get("shared_only")),
    )


def wanted(options: dict[str, Any], *, rollback: bool) -> bool:
    """Whether this run is a fleet run: the database uses django-tenants, or a fleet option
    was given (then fleet.targets() says why it cannot be one)."""
    chosen = selection(options)
    single = rollback and any(options.get(mode) for mode in SINGLE_SCHEMA_MODES)
    if single:
        fleet_only = ("tenants_only", "shared_only", "skip_unsaved", "atomic", "all_databases")
        if any(options.get(flag) for flag in fleet_only):
            raise RollbackError(
                "--list, --check, --rehearse, --sql and --round-trip act on one schema (public, "
                "or the one --schemas names): drop --tenants-only, --shared-only, "
                "--skip-unsaved, --atomic and --all-databases."
            )
        return False
    if options.get("all_databases"):
        return True
    for flag in ("skip_unsaved", "atomic"):
        if options.get(flag) and not fleet.uses_tenants(options["database"]):
            raise RollbackError(f"--{flag.replace('_', '-')} needs django-tenants schemas.")
    return chosen.narrowed or fleet.uses_tenants(options["database"])


def one_schema(database: str, chosen: fleet.Selection) -> fleet.Target:
    """The one schema a single-schema mode acts on: the one --schemas names."""
    found = fleet.targets(database, chosen)
    if len(found) != 1 or chosen.tenants_only:
        raise RollbackError(
            "This acts on one schema: give --schemas one name (--tenants-only names many)."
        )
    return found[0]


@contextmanager
def schema_chosen(options: dict[str, Any]) -> Iterator[None]:
    """rollback_migrations' single-schema modes: in the schema --schemas names, else as
    before (the public schema of a django-tenants database)."""
    chosen = selection(options)
    if not chosen.narrowed:
        yield
        return
    with fleet.on_schema(one_schema(options["database"], chosen)):
        yield


# --- save_migrations_state -------------------------------------------------------------------


def save(command: Any, options: dict[str, Any], **save_options: Any) -> None:
    """Save every target; one line per target, a summary, exit 1 when any failed."""

    def said(save: fleet.TargetSave) -> None:
        name = save.target.name
        if save.error is not None:
            command.say(f"{name}: failed: {save.error}", err=True, verbosity=0)
            return
        result = save.result
        assert result is not None
        what = "created" if result.created else "updated" if result.updated else "already saved"
        command.say(f"{name}: state {what} for {services.describe_state(result.state)}.")
        if result.readiness is not None and not result.readiness.possible:
            command.warn(f"{name}: {result.readiness.message}")

    outcome = fleet.save_fleet(
        database=options["database"],
        selection=selection(options),
        all_databases=bool(options.get("all_databases")),
        on_target=said,
        **save_options,
    )
    failed = outcome.failed
    where = (
        f"databases {', '.join(outcome.databases)}"
        if len(outcome.databases) > 1
        else f"database '{outcome.database}'"
    )
    noun = "target" if options.get("all_databases") else "schema"
    line = (
        f"Saved the state of {len(outcome.saves) - len(failed)} of {len(outcome.saves)} "
        f"{noun}{'s' if len(outcome.saves) != 1 else ''} in {where}."
    )
    document = {
        "command": "save",
        "database": outcome.database,
        "databases": outcome.databases,
        "targets": [_save_entry(command, save) for save in outcome.saves],
    }
    if failed:
        command.fail(
            line + " Failed: " + ", ".join(s.target.name for s in failed) + ".", 1, document
        )
    command.say(line, style=command.style.SUCCESS, verbosity=0)
    if command.json_mode:
        command.emit_json({"ok": True, **document})


def _save_entry(command: Any, save: fleet.TargetSave) -> dict[str, Any]:
    entry: dict[str, Any] = {
        **save.target.as_dict(),
        "ok": save.ok,
        "error": save.error,
    }
    if save.result is not None:
        entry.update(command._document(save.result))
    return entry


# --- rollback_migrations ---------------------------------------------------------------------


def recover(command: RollbackBaseCommand, options: dict[str, Any]) -> None:
    """First of all: resolve the prepared transactions a dead --atomic run left behind."""
    aliases = list(connections) if options.get("all_databases") else [options["database"]]
    resolutions: list[fleet.Resolution] = []
    for alias in aliases:
        try:
            connections[alias].ensure_connection()
        except (DatabaseError, ConnectionDoesNotExist):
            continue  # unreachable: the command's own check says so, in one line
        try:
            resolutions += fleet.recover(alias)
        except DatabaseError as exc:
            command.warn(f"Could not look for prepared transactions (--atomic): {exc}".strip())
    for resolution in resolutions:
        if resolution.action == "left":
            command.warn(resolution.describe())
        else:
            command.say(resolution.describe(), err=True, verbosity=0)


def rollback(command: RollbackBaseCommand, options: dict[str, Any], wait: float) -> None:
    if options["jobs"] < 1:
        raise RollbackError("--jobs needs a number of processes, 1 or more.")
    if not options["all_databases"]:
        fleet.check_setup(options["database"])  # the options' refusal before any query
    recover(command, options)
    if options["atomic"] and not options["all_databases"]:
        fleet.check_two_phase(options["database"])  # before anything: refuse in one line
    plan = _plan(options)
    _preview(command, plan)
    refusal = plan.refusal
    if refusal:
        command.fail(refusal, 1, fleet.FleetResult(plan).as_dict())
    if options["fake"]:
        result = fleet.dry_run(plan)
        command.say(
            f"Dry run finished: {len(plan.planned)} of {len(plan.runs)} schemas would be "
            "rolled back; nothing was changed.",
            verbosity=0,
        )
        if command.json_mode:
            command.emit_json(result.as_dict())
        return
    result = fleet.run_fleet(
        plan,
        on_target=_progress(command, len(plan.planned)),
        jobs=options["jobs"],
        atomic=options["atomic"],
        locks=services.LockSettings.read(options["lock_timeout"], options["retries"], wait),
    )
    summary = result.summary()
    line = (
        f"Fleet rollback to {plan.target_commit[:12]}: {summary['succeeded']} rolled back, "
        f"{summary['done']} already there, {summary['failed']} failed, {summary['held']} held, "
        + (f"{summary['aborted']} aborted, " if options["atomic"] else "")
        + f"{summary['skipped']} skipped (of {summary['total']})."
    )
    if not result.ok:
        after = (
            " Nothing was changed in any schema (--atomic)."
            if options["atomic"]
            else " Run the same command again to finish."
        )
        command.fail(line + after, 1, result.as_dict())
    command.say(line, style=command.style.SUCCESS, verbosity=0)
    if command.json_mode:
        command.emit_json(result.as_dict())


def _plan(options: dict[str, Any]) -> fleet.FleetPlan:
    plan_options: dict[str, Any] = dict(
        selection=selection(options),
        tag=options["tag"],
        commit=options["commit"],
        repo_path=options["path"],
        deployed_commit=options["current_commit"],
        archive=False if options["no_archive"] else None,
        skip_unsaved=options["skip_unsaved"],
        exact_counts=options["exact_counts"],
    )
    if options["all_databases"]:
        return fleet.plan_databases(**plan_options)
    return fleet.plan_fleet(database=options["database"], **plan_options)


def _progress(command: RollbackBaseCommand, planned: int) -> Callable[[fleet.TargetRun], None]:
    """One line per target as it finishes; failures and aborted targets on stderr."""
    counted = {"done": 0, "failed": 0, "prepared": 0}

    def progress(run: fleet.TargetRun) -> None:
        if run.status == "prepared":
            counted["prepared"] += 1
            command.say(
                f"[prepared {counted['prepared']} of {planned}] {run.target.name}: {run.message}."
            )
            return
        if run.status == "aborted":
            command.say(f"{run.target.name}: aborted: {run.message}", err=True, verbosity=0)
            return
        counted["done" if run.status == "succeeded" else "failed"] += 1
        where = f"[done {counted['done']}, failed {counted['failed']}, of {planned}]"
        if run.status == "succeeded":
            command.say(f"{where} {run.target.name}: {run.message} (log entry {run.log_id}).")
        else:  # the one line of each target that failed or was held
            command.say(
                f"{where} {run.target.name}: {run.status}: {run.message}", err=True, verbosity=0
            )

    return progress


def _preview(command: RollbackBaseCommand, plan: fleet.FleetPlan) -> None:
    tags = f" {plan.target_tags}" if plan.target_tags else ""
    command.say(
        f"Rolling back {len(plan.runs)} schema{'s' if len(plan.runs) != 1 else ''} of "
        + (
            f"databases {', '.join(plan.databases)}"
            if len(plan.databases) > 1
            else f"database '{plan.database}'"
        )
        + f" to commit {plan.target_commit}{tags}: tenants first, then public."
    )
    for group in plan.groups():
        kind = {"tenant": "tenant schema", "shared": "shared schema", "database": "database"}[
            group.kind
        ]
        count = len(group.schemas)
        of_type = f" of type {group.tenant_type}" if group.tenant_type else ""
        command.say(
            f"  {count} {kind}{'s' if count != 1 else ''}{of_type} ({', '.join(group.schemas)}): "
            f"{len(group.steps)} migration{'s' if len(group.steps) != 1 else ''} to unapply: "
            + ", ".join(group.steps)
        )
        for total in group.losses:
            command.say(f"    {describe_group_loss(total)}")
    for run in plan.runs:
        if run.status != "planned" or run.odd:
            command.say(f"  {run.target.name}: {run.status}: {run.message}")
        if run.status == "planned" and run.data_loss:
            command.say(f"  {run.target.name}: " + "; ".join(run.data_loss))
