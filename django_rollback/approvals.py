"""Rollbacks approved by a second person (DJANGO_ROLLBACK["APPROVALS"] = N > 0).

A rollback asked for in the admin becomes a request: a log entry "awaiting_approval" that
holds the plan, its fingerprint, the requester and the reason, and runs nothing. Users with
the approve_rollback permission other than the requester approve it (N of them), reject it,
or let it expire (APPROVAL_TTL); the requester may cancel it. Once approved it runs in the
admin's background runner ("approve and run") or later from a terminal (run_approved, behind
`rollback_migrations --approved LOG_ID`). Every approval re-plans: when the database or the
saved states changed since the request (another fingerprint) the request becomes "stale".

Every decision lands in the entry's approval_trail. Functions return results and raise
ApprovalError (or StalePlanError) with the sentence the user reads; the skins check who may
press which button, this module checks the rules that hold whoever calls it (nobody approves
their own request, nothing decided twice).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import QuerySet
from django.utils import timezone

from . import background, conf, services, signals
from .audit import new_entry
from .exceptions import ApprovalError, RollbackError, StalePlanError
from .execution import LockSettings, RollbackResult, StepEvent, current_user, execute
from .execution.checks import refuse_unrunnable
from .models import RollbackLog
from .planning import RollbackPlan

Status = RollbackLog.Status
APPROVE_PERMISSION = f"{RollbackLog._meta.app_label}.approve_rollback"


@dataclass(frozen=True)
class Decision:
    """What an approval did: how many approvals are in, and whether the runner started."""

    log: RollbackLog
    approvals: int
    needed: int
    started: bool = False

    @property
    def complete(self) -> bool:
        return self.approvals >= self.needed


def required() -> int:
    """How many approvals a rollback from the admin needs now (0: approvals are off)."""
    return conf.approvals_required()


def ttl() -> timedelta:
    return timedelta(seconds=float(conf.get_setting("APPROVAL_TTL")))


# --- reading -------------------------------------------------------------------------------


def open_requests(database: str = DEFAULT_DB_ALIAS) -> QuerySet[RollbackLog]:
    """Requests that may still run (awaiting approval or approved), oldest first."""
    expire_overdue(database)
    return RollbackLog.objects.using(database).open_requests()


def expire_overdue(database: str = DEFAULT_DB_ALIAS) -> int:
    """Requests not approved in time become "expired"; returns how many did."""
    overdue = RollbackLog.objects.using(database).filter(
        status=Status.AWAITING_APPROVAL, expires_at__lte=timezone.now()
    )
    expired = 0
    for log in overdue:
        log.add_event("expired", "", "Not approved in time.")
        expired += _move(log, Status.AWAITING_APPROVAL, Status.EXPIRED, finished_at=log.expires_at)
    return expired


def _get(log_id: int | str, database: str) -> RollbackLog:
    log = (
        RollbackLog.objects.using(database).filter(pk=log_id).first()
        if str(log_id).isdigit()
        else None
    )
    if log is None:
        raise ApprovalError(
            f"There is no rollback request with id {log_id} in database '{database}'."
        )
    if not log.is_request:
        raise ApprovalError(
            f"Log entry {log.pk} is no rollback request (it is a {log.get_status_display()} "
            "entry): only requests made while approvals are on can be approved or run."
        )
    if (
        log.status == Status.AWAITING_APPROVAL
        and log.expires_at
        and log.expires_at <= timezone.now()
    ):
        expire_overdue(database)
        log.refresh_from_db(using=database)
    return log


def _move(log: RollbackLog, before: str, after: str, **fields: object) -> int:
    """Save the entry's new status and trail only if nobody moved it meanwhile."""
    changed = (
        RollbackLog.objects.using(log._state.db)
        .filter(pk=log.pk, status=before)
        .update(status=after, approval_trail=log.approval_trail, **fields)
    )
    if changed:
        log.status = after
        for name, value in fields.items():
            setattr(log, name, value)
    return changed


def why_not_open(log: RollbackLog, wanted: str) -> str:
    """The sentence for a request that is not in the state the action needs."""
    number = f"Rollback request {log.pk}"
    decided = {e.get("event"): e for e in log.approval_trail or []}

    def by(event: str) -> str:
        return str(decided.get(event, {}).get("user") or "someone")

    if log.status == Status.AWAITING_APPROVAL:
        return (
            f"{number} is awaiting approval ({len(log.approvers)} of {log.approvals_needed}): "
            f"it cannot {wanted} before it is approved."
        )
    if log.status == Status.APPROVED:
        return f"{number} is approved already: it cannot {wanted} any more."
    if log.status == Status.REJECTED:
        return f"{number} was rejected by {by('rejected')}: it never runs."
    if log.status == Status.CANCELLED:
        return f"{number} was cancelled by {by('cancelled')}: it never runs."
    if log.status == Status.EXPIRED:
        return (
            f"{number} expired at {log.expires_at:%Y-%m-%d %H:%M:%S} UTC without the approvals it "
            "needed: nothing was run; request the rollback again."
        )
    if log.status == Status.STALE:
        return (
            f"{number} is stale: the database or the saved states changed since it was "
            "requested; nothing was run. Request the rollback again from the new preview."
        )
    return (
        f"{number} has run already ({log.get_status_display()}, log entry {log.pk}): "
        "request the rollback again to run it again."
    )


# --- the requester -------------------------------------------------------------------------


def request(
    plan: RollbackPlan,
    *,
    user: str,
    reason: str,
    source: RollbackLog.Source = RollbackLog.Source.ADMIN,
) -> RollbackLog:
    """Record the previewed plan as a request awaiting approval; nothing runs."""
    needed = required()
    if needed < 1:
        raise ApprovalError(
            "Approvals are off (DJANGO_ROLLBACK['APPROVALS'] is 0): roll back directly."
        )
    reason = reason.strip()
    if not reason:
        raise ApprovalError(
            "A rollback request needs a reason: say why the database must go back, so that the "
            "approver can judge it."
        )
    refuse_unrunnable(plan)
    pending = open_requests(plan.database).first()
    if pending is not None:
        raise ApprovalError(
            f"Rollback request {pending.pk} is already {pending.get_status_display()} on "
            f"database '{plan.database}': it must run, be rejected or be cancelled before "
            "another is requested."
        )
    now = timezone.now()
    log = new_entry(
        plan,
        Status.AWAITING_APPROVAL,
        user=user,
        source=source,
        started_at=now,
        fingerprint=plan.fingerprint,
        steps_total=len(plan.steps),
        expires_at=now + ttl(),
    )
    log.add_event("requested", user, reason, needed=needed)
    log.save(using=plan.database)
    signals.send_rollback_requested(plan, log)
    return log


def cancel(
    log_id: int | str, *, user: str, database: str = DEFAULT_DB_ALIAS, comment: str = ""
) -> RollbackLog:
    """The requester withdraws a request that has not run."""
    log = _get(log_id, database)
    if user != log.user:
        raise ApprovalError(
            f"Only its requester ({log.user}) can cancel rollback request {log.pk}; reject it "
            "instead."
        )
    before = log.status
    if before not in RollbackLog.OPEN_REQUESTS:
        raise ApprovalError(why_not_open(log, "be cancelled"))
    log.add_event("cancelled", user, comment.strip())
    if not _move(log, before, Status.CANCELLED, finished_at=timezone.now()):
        raise ApprovalError(f"Rollback request {log.pk} changed meanwhile; reload it.")
    return log


# --- the approvers -------------------------------------------------------------------------


def reject(
    log_id: int | str, *, user: str, comment: str, database: str = DEFAULT_DB_ALIAS
) -> RollbackLog:
    """Refuse a request; it never runs. The comment says why."""
    log = _get(log_id, database)
    comment = comment.strip()
    if not comment:
        raise ApprovalError("Say why the rollback is rejected: the requester reads the comment.")
    if user == log.user:
        raise ApprovalError(
            f"You requested rollback {log.pk} yourself: cancel it instead of rejecting it."
        )
    if log.status not in RollbackLog.OPEN_REQUESTS:
        raise ApprovalError(why_not_open(log, "be rejected"))
    before = log.status
    log.add_event("rejected", user, comment)
    if not _move(log, before, Status.REJECTED, finished_at=timezone.now()):
        raise ApprovalError(f"Rollback request {log.pk} changed meanwhile; reload it.")
    return log


def approve(
    log_id: int | str,
    *,
    user: str,
    database: str = DEFAULT_DB_ALIAS,
    comment: str = "",
    run: bool = False,
    repo_path: str | Path | None = None,
) -> Decision:
    """One approval. When it is the last one needed, the request becomes "approved" (to run
    from a terminal) or, with `run`, is started in the background runner at once.

    The plan is made again first: if it is not the one requested (the database or the saved
    states changed), the request becomes "stale" and StalePlanError says so; nothing runs."""
    log = _get(log_id, database)
    if user == log.user:
        raise ApprovalError(
            f"You requested rollback {log.pk} yourself: another user with the approve_rollback "
            "permission must approve it."
        )
    if log.status != Status.AWAITING_APPROVAL:
        raise ApprovalError(why_not_open(log, "be approved"))
    if user in log.approvers:
        raise ApprovalError(
            f"You approved rollback request {log.pk} already: it needs "
            f"{log.approvals_needed - len(log.approvers)} more approval(s) by other users."
        )
    _refuse_if_stale(log, repo_path)
    with transaction.atomic(using=database):
        # Locked while deciding, so two approvers at once cannot both be the last one.
        log = RollbackLog.objects.using(database).select_for_update().get(pk=log.pk)
        if log.status != Status.AWAITING_APPROVAL or user in log.approvers:
            raise ApprovalError(f"Rollback request {log.pk} changed meanwhile; reload it.")
        log.add_event("approved", user, comment.strip())
        approvals, needed = len(log.approvers), log.approvals_needed
        if approvals >= needed:
            log.status = Status.APPROVED
        log.save(using=database, update_fields=["status", "approval_trail"])
    started = False
    if run and approvals >= needed:
        background.start_approved(log)
        started = True
    return Decision(log, approvals, needed, started)


def _refuse_if_stale(log: RollbackLog, repo_path: str | Path | None) -> None:
    """The plan of today must be the one requested; otherwise the request becomes stale."""
    database = log._state.db or log.database
    try:
        plan = services.plan_rollback(
            commit=log.to_commit,
            repo_path=repo_path or conf.repo_path(),
            database=database,
            count_rows=False,
        )
        changed = plan.fingerprint != log.fingerprint
        detail = ""
    except RollbackError as exc:  # the current or the target state is gone, for instance
        changed, detail = True, f" ({exc})"
    if not changed:
        return
    message = (
        f"The database or the saved states changed since rollback request {log.pk} was made"
        f"{detail}: nothing was run and the request is now stale. Request the rollback "
        "again from the new preview."
    )
    log.add_event("stale", "", message)
    _move(log, Status.AWAITING_APPROVAL, Status.STALE, finished_at=timezone.now())
    raise StalePlanError(message)


# --- the operator at a terminal ------------------------------------------------------------


def run_approved(
    log_id: int | str,
    *,
    database: str = DEFAULT_DB_ALIAS,
    repo_path: str | Path | None = None,
    deployed_commit: str | None = None,
    progress: Callable[[StepEvent], None] | None = None,
    locks: LockSettings | None = None,
    on_wait: Callable[[], None] | None = None,
    on_start: Callable[[RollbackPlan, RollbackLog], None] | None = None,
) -> RollbackResult:
    """Run an approved request here and now (`rollback_migrations --approved LOG_ID`);
    `on_start` is told the checked plan just before it runs.

    Anything but an approved request is refused and left as it is. A plan that changed since
    the request makes it stale; a refusal before the first step (another rollback holds the
    lock) leaves it approved, to run later."""
    log = _get(log_id, database)
    if log.status != Status.APPROVED:
        raise ApprovalError(why_not_open(log, "run"))
    plan = services.plan_rollback(
        commit=log.to_commit,
        repo_path=repo_path or conf.repo_path(),
        database=database,
        deployed_commit=deployed_commit,
    )
    if plan.fingerprint != log.fingerprint:
        message = (
            f"The database or the saved states changed since rollback request {log.pk} was "
            "approved: nothing was run and the request is now stale. Request the rollback again."
        )
        log.add_event("stale", current_user(), message)
        _move(log, Status.APPROVED, Status.STALE, finished_at=timezone.now())
        raise StalePlanError(message)
    log.add_event("run", current_user(), f"from a terminal on {socket.gethostname()}")
    # Claimed by this process before it runs: a second terminal is refused.
    if not _move(log, Status.APPROVED, Status.QUEUED, pid=os.getpid(), host=socket.gethostname()):
        raise ApprovalError(f"Rollback request {log.pk} is no longer approved; nothing was run.")
    try:
        if on_start is not None:
            on_start(plan, log)
        return execute(
            plan,
            user=log.user,
            source=RollbackLog.Source(log.source or RollbackLog.Source.ADMIN),
            log=log,
            progress=progress,
            locks=locks,
            on_wait=on_wait,
        )
    except BaseException:
        # Refused before its first step (the lock, for one): still approved, to run later.
        log.approval_trail = (log.approval_trail or [])[:-1]
        _move(log, Status.QUEUED, Status.APPROVED, pid=None)
        raise
