"""The one wording of how a run ended badly: a failure (rollback or rehearsal) and an
interrupt name the step and say what was changed, in the same terms."""

from __future__ import annotations

from django.db.transaction import TransactionManagementError
from django.utils.translation import ngettext

from ..exceptions import first_line
from ..planning import RollbackPlan
from .records import RunRecord

REHEARSAL_UNCHANGED = "nothing was changed (the rehearsal ran in one transaction, rolled back)"
TRANSACTION_UNCHANGED = "the database is unchanged (the plan ran in one transaction)"


def steps_done(record: RunRecord) -> str:
    return ngettext(
        "%(count)d step before it stays unapplied",
        "%(count)d steps before it stay unapplied",
        len(record.finished),
    ) % {"count": len(record.finished)}


def _where(record: RunRecord) -> str:
    return f" at {record.running[-1].label}" if record.running else ""


def failure_message(
    plan: RollbackPlan, exc: Exception, record: RunRecord, *, rehearsal: bool = False
) -> str:
    """The one line that names the failing step, the same for a rollback and a rehearsal."""
    if rehearsal:
        outcome = REHEARSAL_UNCHANGED
    elif plan.all_or_nothing:
        outcome = TRANSACTION_UNCHANGED
    else:
        outcome = steps_done(record) + "; saved states unchanged"
    prefix = "Rehearsal: rollback" if rehearsal else "Rollback"
    return f"{prefix} failed{_where(record)}: {first_line(first_error(exc))}; {outcome}."


def interrupt_message(plan: RollbackPlan, record: RunRecord) -> str:
    if plan.all_or_nothing:
        return "Interrupted: nothing was changed (the plan ran in one transaction)."
    return (
        f"Interrupted{_where(record)}: {steps_done(record)}; saved states unchanged. Run the "
        "same rollback again to finish it."
    )


def gave_up_message(tries: int, reason: str) -> str:
    return (
        f"Rollback gave up after {tries} attempt{'s' if tries != 1 else ''}: "
        f"{reason}; the database is unchanged."
    )


def first_error(exc: BaseException) -> BaseException:
    """The error that broke the transaction, not the one that followed it: after a failed
    query inside an atomic block, Django refuses every further query (SQLite's schema editor
    checks constraints on its way out) with TransactionManagementError, which says nothing
    about the constraint that failed."""
    while isinstance(exc, TransactionManagementError) and exc.__context__ is not None:
        exc = exc.__context__
    return exc
