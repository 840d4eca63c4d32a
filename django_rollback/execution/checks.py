"""What a plan must pass before and after it runs."""

from __future__ import annotations

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..exceptions import RollbackError, RollbackFailedError, StalePlanError
from ..models import MigrationState
from ..planning import RollbackPlan, labels
from ..presenters.text import describe_state
from ..snapshot import applied_migrations


def refuse_unrunnable(plan: RollbackPlan) -> None:
    """A plan with blockers, or with nothing to do, does not start."""
    plan.refuse_if_blocked()
    if plan.is_noop:
        raise RollbackError(f"Nothing to do: {describe_state(plan.target)} is the current state.")


def check_rehearsable(plan: RollbackPlan) -> None:
    """A rehearsal must be undone completely, so it needs one transaction around it all."""
    connection = connections[plan.database]
    if not connection.features.can_rollback_ddl:
        raise RollbackError(
            f"Cannot rehearse on {connection.display_name}: it commits every schema change at "
            "once (DDL is not transactional), so a rehearsal could not be undone. Rehearse on "
            "a PostgreSQL or SQLite copy instead, or preview with --fake."
        )
    if not plan.all_or_nothing:
        non_atomic = ", ".join(s.label for s in plan.steps if not s.atomic)
        raise RollbackError(
            f"Cannot rehearse: {non_atomic} cannot run inside a transaction, so a rehearsal "
            "could not be undone."
        )


def refuse_stale(plan: RollbackPlan) -> None:
    """Holding the rollback lock: the database and the states must be as when planned."""
    connection = connections[plan.database]
    if applied_migrations(connection) != plan.applied_before:
        raise StalePlanError(
            "The applied migrations changed since this plan was made: preview it again."
        )
    states = MigrationState.objects.using(plan.database)
    if states.filter(pk__in=[plan.current.pk, plan.target.pk]).count() != 2:
        raise StalePlanError("The saved states changed since this plan was made.")


def check_result(connection: BaseDatabaseWrapper, plan: RollbackPlan) -> None:
    actual = applied_migrations(connection)
    if actual != plan.expected_after:
        raise RollbackFailedError(
            "after the plan the applied migrations are not the expected ones "
            f"(unexpected: {labels(actual - plan.expected_after) or '-'}; "
            f"missing: {labels(plan.expected_after - actual) or '-'})"
        )
