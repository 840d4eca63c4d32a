"""The progress lines of a running rollback or rehearsal, as the command prints them:
Django's "Unapplying app.name... OK", then the step's time, the steps done so far and the
time since the first step began."""

from __future__ import annotations

import logging

from ..execution import StepEvent
from .base import RollbackBaseCommand


def step_timing(event: StepEvent) -> str:
    return f"{event.seconds:.2f}s; {event.number}/{event.total} done, {event.elapsed:.2f}s elapsed"


class ProgressPrinter:
    """Prints the progress events of one command (its verbosity, --json and logger)."""

    def __init__(self, command: RollbackBaseCommand) -> None:
        self.command = command
        self.line_open = False  # an "Unapplying ..." line waits for its outcome

    def close_step_line(self) -> None:
        """End the "Unapplying ..." line that a failure cut short."""
        command = self.command
        if self.line_open and not command.json_mode:
            command.stdout.write(command.style.ERROR(" failed"))
        self.line_open = False

    def __call__(self, event: StepEvent) -> None:
        command, logger = self.command, self.command.logger
        timing = step_timing(event)
        if command.json_mode or command.verbosity < 1:
            if event.kind == "finished" and logger:
                logger.info("Unapplying %s... OK (%s)", event.step.label, timing)
            if event.kind == "waiting" and logger and not command.json_mode:
                logger.warning(event.message)
            return
        self.line_open = event.kind == "started"
        if event.kind == "waiting":
            # The attempt was abandoned mid-line: end it, and say why and for how long.
            command.stdout.write(command.style.WARNING(" lock not available"))
            command.say(f"  {event.message}", logging.WARNING, command.style.WARNING)
            return
        if event.kind == "started":
            command.stdout.write(f"  Unapplying {event.step.label}...", ending="")
            command.stdout.flush()
        else:
            command.stdout.write(command.style.SUCCESS(f" OK ({timing})"))
            if logger:
                logger.info("Unapplying %s... OK (%s)", event.step.label, timing)
