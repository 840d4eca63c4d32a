"""The operations panel: saved states, the rollback preview, and the audit log.

Thin on purpose: every decision is made by services; this module turns requests into
service calls and results into pages and messages. States are written only by
save_migrations_state, the "Save current state" button and rollbacks, never by hand.
"""

from .log import RollbackLogAdmin
from .states import MigrationStateAdmin

__all__ = ["MigrationStateAdmin", "RollbackLogAdmin"]
