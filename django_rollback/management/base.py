"""What both commands share: the reference flags, logging of every line, error handling."""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from .. import __version__
from ..exceptions import RollbackError, RollbackInterruptedError, Terminated, database_error


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (docker stop, kill) stops the command the way Ctrl-C does, so that a rollback
    can close its log entry and say what it changed instead of dying silently."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class BadOptions(CommandError):
    """What argparse itself refuses: an unknown option, a value of the wrong type, two options
    of one mutually exclusive group. Raised while the command line is parsed."""


class OneLineParser(CommandParser):
    """Django's parser, refusing bad options the way every other refusal is made: one line and
    exit status 1. From a shell argparse would print its usage block and exit 2, the status
    that --check and --require-rollback give to stop a deploy."""

    def error(self, message: str) -> NoReturn:
        raise BadOptions(options_refusal(message, self.prog))


def options_refusal(message: str, prog: str) -> str:
    """argparse's message as a sentence of ours: "Choose -t/--tag or -c/--commit, not both."
    for a mutually exclusive group, the message and where to read the usage otherwise."""
    conflict = re.fullmatch(r"argument (\S+): not allowed with argument (\S+)", message)
    if conflict:
        given, first = conflict.groups()
        return f"Choose {first} or {given}, not both."
    return f"{message[:1].upper()}{message[1:]}: see {prog.strip()} --help."


class RollbackBaseCommand(BaseCommand):
    # Commands run in entrypoints right after `migrate`, which has run the checks already.
    requires_system_checks: list[str] = []  # noqa: RUF012

    logger: logging.Logger | None = None
    json_mode = False
    verbosity = 1

    def get_version(self) -> str:
        """`--version` names this package, not Django."""
        return f"django-rollback {__version__}"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "-p",
            "--path",
            help="Git repository path (default: DJANGO_ROLLBACK['REPO_PATH'], settings.BASE_DIR "
            "or the current directory; parent directories are searched).",
        )
        parser.add_argument("-l", "--logger", help="Also send every line to this Python logger.")
        parser.add_argument(
            "--log-level", help="Level to set on that logger: DEBUG, INFO, WARNING, ..."
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help='Database alias to save or roll back (default: "default").',
        )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django instantiates CommandParser itself (no hook for the class): only error() differs.
        parser.__class__ = OneLineParser
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
        except BadOptions as exc:  # parsing happens before Django's own handler of CommandError
            if "--json" in argv[2:]:
                self.emit_json({"ok": False, "error": str(exc)})
            self.stderr.write(f"CommandError: {exc}")
            sys.exit(exc.returncode)

    def execute(self, *args: Any, **options: Any) -> str | None:
        self.json_mode = bool(options.get("json"))
        self.verbosity = int(options.get("verbosity", 1))
        try:
            self.logger = self._make_logger(options.get("logger"), options.get("log_level"))
            with sigterm_as_interrupt():
                return super().execute(*args, **options)
        except RollbackInterruptedError as exc:
            self.fail(str(exc), exc.exit_code)
        except KeyboardInterrupt as exc:  # before anything was written
            self.fail(
                "Interrupted: nothing was changed.", 143 if isinstance(exc, Terminated) else 130
            )
        except RollbackError as exc:
            self.fail(str(exc))
        except DatabaseError as exc:
            self.fail(database_error(options.get("database"), exc))

    @staticmethod
    def wait_seconds(options: dict[str, Any]) -> float:
        """The --wait option, refused when negative."""
        wait = float(options["wait"])
        if wait < 0:
            raise RollbackError("--wait needs a number of seconds, 0 or more.")
        return wait

    def emit_json(self, document: dict[str, Any]) -> None:
        """The one JSON document of a --json run, on stdout."""
        self.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str))

    def _make_logger(self, name: str | None, level: str | None) -> logging.Logger | None:
        if level and not name:
            raise RollbackError("--log-level needs -l/--logger to name the logger.")
        if not name:
            return None
        logger = logging.getLogger(name)
        if level:
            number = logging.getLevelName(level.upper())
            if not isinstance(number, int):
                raise RollbackError(f'Unknown log level "{level}": use DEBUG, INFO, WARNING, ...')
            logger.setLevel(number)
        return logger

    def say(
        self,
        line: str = "",
        level: int = logging.INFO,
        style: Any = None,
        *,
        err: bool = False,
        verbosity: int = 1,
    ) -> None:
        """Write a line for the operator and send it to the logger at `level`; with --json
        stdout holds only the document, so the line goes to the logger alone. Shown when
        -v/--verbosity is at least `verbosity` (0: the last line of a command, 2: details)."""
        if not self.json_mode and self.verbosity >= verbosity:
            (self.stderr if err else self.stdout).write(style(line) if style else line)
        if self.logger and line.strip():
            self.logger.log(level, line.strip())

    def warn(self, line: str) -> None:
        self.say(line, logging.WARNING, self.style.WARNING, err=True, verbosity=0)

    def waiting_for_lock(self, database: str, wait: float) -> None:
        """Said once when a command starts waiting for the rollback lock."""
        self.say(
            f"Waiting up to {wait:g}s for the rollback running on database '{database}'...",
            verbosity=0,
        )
        self.stdout.flush()

    def fail(
        self, message: str, returncode: int = 1, document: dict[str, Any] | None = None
    ) -> NoReturn:
        """One line on stderr and a non-zero exit; with --json also an error document (the
        `document` given, with ok false and the error)."""
        if self.logger:
            self.logger.error(message)
        if self.json_mode:
            self.emit_json({**(document or {}), "ok": False, "error": message})
        raise CommandError(message, returncode=returncode)
