"""The JSON documents of rollback_migrations (their schema: docs/json.md)."""

from __future__ import annotations

from typing import Any

from ..planning import RollbackPlan
from ..roundtrip import RoundTripResult
from ..services import StateListing


def plan_document(
    plan: RollbackPlan, *, dry_run: bool, rehearsal: bool, result: dict[str, Any]
) -> dict[str, Any]:
    """A dry run, a rehearsal or a rollback: the plan and what became of it."""
    document: dict[str, Any] = {
        "command": "rollback",
        "dry_run": dry_run,
        "rehearsal": rehearsal,
        "plan": plan.as_dict(),
        "result": result,
    }
    if plan.sql is not None:
        document["plan"]["sql"] = plan.sql
    return document


def list_document(listing: StateListing, database: str) -> dict[str, Any]:
    """`--list --json`: the saved states, newest first, and where the database stands."""
    head = listing.head.sha if listing.head else None
    standing = listing.standing
    return {
        "ok": True,
        "command": "list",
        "database": database,
        "current_commit": head,
        "current_commit_error": listing.head_error,
        "standing": {"status": standing.status, "message": standing.message} if standing else None,
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


def round_trip_document(result: RoundTripResult) -> dict[str, Any]:
    return {
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
