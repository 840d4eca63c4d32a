"""Every refusal is a RollbackError whose message is the one line the user reads."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (a driver's may span many), or its class name."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def database_error(alias: object, exc: BaseException) -> str:
    """How a command reports a database's error: which database, and the first line."""
    return f"Database error on '{alias}': {first_line(exc)}"


class RollbackError(Exception):
    """Base class: the message is shown to the user as is."""


class RepositoryError(RollbackError):
    """The git repository is missing, unreadable or has no commits."""


class UnknownReferenceError(RollbackError):
    """A tag or commit that neither the saved states nor git know."""


class AmbiguousCommitError(RollbackError):
    """A commit prefix that matches more than one commit."""


class StateNotSavedError(RollbackError):
    """A commit (HEAD or the target) whose migration state was never saved."""


class NotMigratedError(RollbackError):
    """The django_rollback tables do not exist in the database yet."""


class DatabaseUnavailableError(RollbackError):
    """The database cannot be reached."""


class PlanRefusedError(RollbackError):
    """The plan cannot be run safely (irreversible step, missing file, ...)."""


class RollbackInProgressError(RollbackError):
    """Another rollback holds the lock."""


class StalePlanError(RollbackError):
    """The database changed between the preview and the execution."""


class RollbackFailedError(RollbackError):
    """A step failed while the rollback ran."""


class ArchiveError(RollbackError):
    """An archive that cannot be restored or purged (unknown, restored already, ...)."""


class UnappliedMigrationsError(RollbackError):
    """Migration files on disk are not applied: saving would record a wrong state."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by the commands' signal handler as Ctrl-C raises KeyboardInterrupt."""


class RollbackInterruptedError(RollbackError):
    """Ctrl-C or SIGTERM stopped a command; the message says what was changed, if anything."""

    def __init__(self, message: str, *, terminated: bool = False) -> None:
        super().__init__(message)
        self.terminated = terminated

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process stopped by the signal: 128 + its number."""
        return 143 if self.terminated else 130


class ApprovalError(RollbackError):
    """A rollback request that cannot be made, approved, rejected, cancelled or run as asked
    (no reason, one's own request, already decided, expired, ...)."""
