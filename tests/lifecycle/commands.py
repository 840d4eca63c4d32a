"""Running the blog's manage.py as the machine does: to the end, or started and signalled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass
class Outcome:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        command = " ".join(self.args)
        return f"manage.py {command} → exit {self.returncode}\n{self.stdout}\n{self.stderr}"

    def refused_cleanly(self) -> bool:
        """The refusal contract: non-zero exit, one line on stderr, no traceback."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return self.returncode != 0 and len(lines) == 1 and "Traceback" not in self.stderr


@dataclass
class Runner:
    """manage.py of the checkout at `path`, on the database at `url` (options: extra
    DATABASES keys, e.g. for PgBouncer)."""

    path: Path
    url: str
    options: dict[str, object]
    rollback_settings: dict[str, object] = field(default_factory=dict)  # DJANGO_ROLLBACK keys

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "DATABASE_URL": self.url,
            "DATABASE_OPTIONS": json.dumps(self.options),
            "ROLLBACK_SETTINGS": json.dumps(self.rollback_settings),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def with_settings(self, **extra: object) -> Runner:
        """The same runner with more DJANGO_ROLLBACK keys."""
        return replace(self, rollback_settings={**self.rollback_settings, **extra})

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=self.path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )

    def run(self, *args: str) -> Outcome:
        process = self.start(*args)
        return finish(process, args)

    def ok(self, *args: str) -> Outcome:
        outcome = self.run(*args)
        assert outcome.returncode == 0, str(outcome)
        return outcome

    def signalled(self, args: tuple[str, ...], signum: int, after: float) -> Outcome:
        """Start the command, send it `signum` after `after` seconds (if still running)."""
        process = self.start(*args)
        deadline = time.monotonic() + after
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signum)
        return finish(process, args)


def finish(process: subprocess.Popen[str], args: tuple[str, ...]) -> Outcome:
    try:
        out, err = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"manage.py {' '.join(args)} hung for 300s:\n{out}\n{err}") from None
    return Outcome(args, process.returncode, out, err)


SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}
