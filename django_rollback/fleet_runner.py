"""A fleet rollback started from the admin: queued as one log entry in the public schema and
run by the same detached runner as a single-database rollback (background.py).

The entry's `plan` holds {"fleet": ...}: the target commit, whether unsaved schemas are
skipped, and, as the run goes, one outcome per target. Its progress fields count targets, not
steps (steps_total = planned targets, steps_done = targets finished, running_step = "done X,
failed Y, of N"), so the log page's live view follows it unchanged. The entry stays "queued"
while it runs (its runner's pid is set, so the page sees it alive): the public schema's own
rollback, last, closes entries left "running" as stale, and must not close this one.
Each target keeps its own log entry, in its own schema, as on the command line.
"""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from . import conf, fleet
from .exceptions import RollbackError, StalePlanError
from .execution import current_user
from .models import RollbackLog


def fingerprint(plan: fleet.FleetPlan) -> str:
    """What the confirm carries: every target, its status and its own plan's fingerprint."""
    digest = hashlib.sha256(plan.target_commit.encode())
    for run in plan.runs:
        own = run.plan.fingerprint if run.plan is not None else ""
        digest.update(f"|{run.target.name}:{run.status}:{own}".encode())
    return digest.hexdigest()


def _public() -> fleet.Target:
    return fleet.Target(DEFAULT_DB_ALIAS, fleet.public_schema(), "shared")


def start(plan: fleet.FleetPlan, *, user: str = "") -> RollbackLog:
    """Queue the fleet rollback and start its runner; returns the entry to watch."""
    from .background import launch  # the runner's launcher, shared with single rollbacks

    refusal = plan.refusal
    if refusal:
        raise RollbackError(refusal)
    public = next((r for r in plan.runs if r.target.kind == "shared"), None)
    from_commit = public.plan.current.commit if public and public.plan else plan.target_commit
    with fleet.on_schema(_public()):
        log = RollbackLog.objects.using(plan.database).create(
            status=RollbackLog.Status.QUEUED,
            database=plan.database,
            from_commit=from_commit,
            to_commit=plan.target_commit,
            to_tags=plan.target_tags,
            user=user or current_user(),
            source=RollbackLog.Source.ADMIN,
            host=socket.gethostname(),
            fingerprint=fingerprint(plan),
            steps_total=len(plan.planned),
            plan={"fleet": _document(plan)},
        )
        pid = launch(log)
        if pid is not None:
            RollbackLog.objects.using(plan.database).filter(pk=log.pk).update(pid=pid)
            log.pid = pid
    return log


def _document(plan: fleet.FleetPlan, result: fleet.FleetResult | None = None) -> dict[str, Any]:
    return {
        "target_commit": plan.target_commit,
        "skip_unsaved": plan.skip_unsaved,
        "total": len(plan.runs),
        "summary": result.summary() if result is not None else None,
        "targets": [run.as_dict() for run in plan.runs],
    }


def is_fleet(log: RollbackLog) -> bool:
    return isinstance(log.plan, dict) and "fleet" in log.plan


def run_queued(log: RollbackLog, database: str) -> int:
    """The runner's work for a fleet entry: plan again, check the fingerprint, run."""
    entries = RollbackLog.objects.using(database)
    entries.filter(pk=log.pk).update(pid=os.getpid())
    try:
        plan = _plan_again(log, database)
    except RollbackError as exc:
        _close(database, log, RollbackLog.Status.FAILED, error=str(exc))
        return 1
    counted = {"done": 0, "failed": 0}
    total = len(plan.planned)  # fixed now: a target leaves "planned" when it finishes
    lines: list[str] = []

    def progress(run: fleet.TargetRun) -> None:
        counted["done" if run.status == "succeeded" else "failed"] += 1
        lines.append(f"{run.target.name}: {run.status}: {run.message}")
        with fleet.on_schema(_public()):
            entries.filter(pk=log.pk).update(
                steps_done=counted["done"] + counted["failed"],
                running_step=(f"done {counted['done']}, failed {counted['failed']}, of {total}"),
                heartbeat_at=timezone.now(),
                output="\n".join(lines),
                plan={"fleet": _document(plan)},
            )

    try:
        result = fleet.run_fleet(
            plan,
            jobs=fleet.default_jobs(),
            on_target=progress,
            user=log.user,
            source=RollbackLog.Source.ADMIN,
        )
    except RollbackError as exc:
        _close(database, log, RollbackLog.Status.FAILED, error=str(exc), plan=plan)
        return 1
    summary = result.summary()
    line = (
        f"Fleet rollback: {summary['succeeded']} rolled back, {summary['done']} already there, "
        f"{summary['failed']} failed, {summary['held']} held, {summary['skipped']} skipped "
        f"(of {summary['total']})."
    )
    lines.append(line)
    status = RollbackLog.Status.SUCCEEDED if result.ok else RollbackLog.Status.FAILED
    _close(
        database,
        log,
        status,
        error="" if result.ok else line + " Run it again to finish.",
        plan=plan,
        result=result,
        output="\n".join(lines),
    )
    return 0 if result.ok else 1


def _plan_again(log: RollbackLog, database: str) -> fleet.FleetPlan:
    """The previewed fleet plan made again; refused when it is not the one confirmed."""
    saved = log.plan["fleet"]
    plan = fleet.plan_fleet(
        database=database,
        commit=saved["target_commit"],
        repo_path=conf.repo_path(),
        skip_unsaved=bool(saved.get("skip_unsaved")),
        count_rows=False,
    )
    if fingerprint(plan) != log.fingerprint:
        raise StalePlanError(
            "The schemas or their saved states changed since the preview; nothing was "
            "done. Read the new preview before confirming."
        )
    return plan


def _close(
    database: str,
    log: RollbackLog,
    status: RollbackLog.Status,
    *,
    error: str = "",
    plan: fleet.FleetPlan | None = None,
    result: fleet.FleetResult | None = None,
    output: str | None = None,
) -> None:
    now = timezone.now()
    values: dict[str, Any] = {
        "status": status,
        "error": error,
        "finished_at": now,
        "duration": (now - log.started_at).total_seconds(),
        "running_step": "",
    }
    if plan is not None:
        values["plan"] = {"fleet": _document(plan, result)}
    if output is not None:
        values["output"] = output
    with fleet.on_schema(_public()):
        RollbackLog.objects.using(database).filter(pk=log.pk).update(**values)
