"""Rollbacks started from the admin run in a process of their own, not in the web request.

Why a detached subprocess (see README, "Rollbacks from the admin run outside the request"):
- a web worker is killed when a request outlives the server's timeout (gunicorn: 30 s by
  default; a load balancer: 60 s); a thread inside that worker dies with it, and a sync worker
  may be recycled (max_requests) at any time;
- Django's tasks framework needs a worker service the project may not run, and is not in
  Django 5.2; Celery or RQ would be new dependencies and infrastructure;
- a child process in a session of its own (start_new_session) outlives the web worker that
  started it, needs nothing but the Python that already runs the site, and is what an
  operator would do by hand: run the rollback from the same code and settings.

The web request creates the log entry (status "queued"), starts the runner and returns; the
runner re-plans, checks that the plan is still the one previewed (its fingerprint), and runs it
through the same execute() as the command, which records its progress in the entry.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import traceback

from django.conf import settings
from django.db import connections
from django.utils import timezone

from . import conf
from .audit import new_entry
from .exceptions import RollbackError, RollbackInProgressError, StalePlanError, first_line
from .execution import current_user, execute
from .locks import rollback_lock
from .models import RollbackLog
from .planning import RollbackPlan
from .progress import live_progress
from .services.targets import plan_rollback

RUNNER_MODULE = "django_rollback.runner"


def start_rollback(
    plan: RollbackPlan, *, user: str = "", source: RollbackLog.Source = RollbackLog.Source.ADMIN
) -> RollbackLog:
    """Queue the plan and start its runner; returns at once with the log entry to watch."""
    plan.refuse_if_blocked()
    _refuse_if_busy(plan.database)
    log = new_entry(
        plan,
        RollbackLog.Status.QUEUED,
        user=user or current_user(),
        source=source,
        fingerprint=plan.fingerprint,
        steps_total=len(plan.steps),
    )
    log.save(using=plan.database)
    return _start(log, plan.database)


def start_approved(log: RollbackLog) -> RollbackLog:
    """Start the runner of a request whose approvals are in (approvals.approve, run=True);
    the runner checks its fingerprint again before the first step."""
    database = log._state.db or log.database
    _refuse_if_busy(database)
    queued = (
        RollbackLog.objects.using(database)
        .filter(pk=log.pk, status=RollbackLog.Status.APPROVED)
        .update(status=RollbackLog.Status.QUEUED)
    )
    if not queued:
        raise RollbackError(
            f"Rollback request {log.pk} is no longer approved; nothing was started."
        )
    log.status = RollbackLog.Status.QUEUED
    return _start(log, database)


def _start(log: RollbackLog, database: str) -> RollbackLog:
    try:
        pid = launch(log)
    except (OSError, RollbackError) as exc:
        log.status, log.finished_at = RollbackLog.Status.FAILED, timezone.now()
        log.error = f"The rollback process could not be started: {exc}"
        log.save(using=database, update_fields=["status", "finished_at", "error"])
        raise RollbackError(log.error) from exc
    if pid is not None:
        RollbackLog.objects.using(database).filter(
            pk=log.pk, status=RollbackLog.Status.QUEUED
        ).update(pid=pid)
        log.pid = pid
    return log


def _refuse_if_busy(database: str) -> None:
    """Say at once when another rollback runs, rather than on the entry's page later."""
    for other in RollbackLog.objects.using(database).active():
        if live_progress(other).active:
            raise RollbackInProgressError(
                f"Another rollback is running on database '{database}' (log entry {other.pk}); "
                "try again when it has finished."
            )
    # A command may hold the lock: refuse now, not later. Behind PgBouncer this tries the
    # transaction-scoped lock, which cannot stay behind on a pooled server connection.
    with rollback_lock(connections[database]):
        pass


def launch(log: RollbackLog) -> int | None:
    """Start `python -m django_rollback.runner LOG_ID DATABASE` detached; returns its pid.

    Tests replace this function to run the runner in-process."""
    settings_module = settings.SETTINGS_MODULE or os.environ.get("DJANGO_SETTINGS_MODULE")
    if not settings_module:
        raise RollbackError(
            "The admin starts rollbacks in a process of their own, which needs "
            "DJANGO_SETTINGS_MODULE (settings.configure() cannot be passed on): run "
            "rollback_migrations instead."
        )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        # The web server may have put the project on sys.path itself (gunicorn --chdir,
        # --pythonpath): hand the same path to the runner.
        "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", RUNNER_MODULE, str(log.pk), log._state.db or log.database],
        env=environment,
        cwd=os.getcwd(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=None,  # a crash's traceback lands in the web server's error log
        start_new_session=True,  # not in the web worker's process group: it outlives it
    )
    # Reap it when it ends, so a finished runner does not linger as a zombie of this worker.
    threading.Thread(target=process.wait, name="django-rollback-reaper", daemon=True).start()
    return process.pid


def run_queued(log_id: int, database: str) -> int:
    """The runner's work: run the queued entry's plan; the outcome lands in the entry."""
    log = RollbackLog.objects.using(database).get(pk=log_id)
    if log.status != RollbackLog.Status.QUEUED:
        return 1
    from . import fleet_runner  # a django-tenants fleet: one entry for every schema

    if fleet_runner.is_fleet(log):
        return fleet_runner.run_queued(log, database)
    RollbackLog.objects.using(database).filter(pk=log.pk).update(pid=os.getpid())
    log.pid = os.getpid()
    try:
        plan = plan_rollback(
            commit=log.to_commit, repo_path=conf.repo_path(), database=database, count_rows=False
        )
        if plan.fingerprint != log.fingerprint:
            raise StalePlanError(
                "The database or the saved states changed since the preview; nothing was done. "
                "Read the new preview before confirming."
            )
        execute(plan, user=log.user, source=RollbackLog.Source(log.source), log=log)
    except RollbackError as exc:
        _fail_if_not_started(log, str(exc))
        return 1
    except Exception as exc:
        reason = first_line(exc)
        _fail_if_not_started(log, f"The rollback process failed: {reason}")
        traceback.print_exc()
        return 1
    return 0


def _fail_if_not_started(log: RollbackLog, message: str) -> None:
    """A refusal before the run (lock held, stale plan) closes the queued entry; a run that
    failed has closed it already, with its own message."""
    RollbackLog.objects.using(log._state.db).filter(
        pk=log.pk, status=RollbackLog.Status.QUEUED
    ).update(status=RollbackLog.Status.FAILED, error=message, finished_at=timezone.now())
