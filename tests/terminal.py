"""manage.py on a pseudo-terminal, and the one line a refusal prints: helpers for the
tests of the commands' prompts and messages."""

from __future__ import annotations

import os
import select
import subprocess
import sys

from .projects import Project


def project_env(project: Project, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DATABASE_URL": project.url,
        "PYTHONDONTWRITEBYTECODE": "1",
        **(extra or {}),
    }


class Terminal:
    """manage.py run on a pseudo-terminal, as an operator types it."""

    def __init__(self, project: Project, *args: str) -> None:
        import pty

        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=project.path,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=project_env(project),
            close_fds=True,
        )
        os.close(slave)
        self.output = ""

    def read_until(self, text: str) -> str:
        """Everything printed until `text` appears (or the command ends)."""
        while text not in self.output:
            ready, _, _ = select.select([self.master], [], [], 120)
            assert ready, f"no {text!r} in:\n{self.output}"
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            self.output += chunk.decode(errors="replace")
        return self.output

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def finish(self) -> int:
        self.read_until("\0")  # everything until the end
        code = self.process.wait(timeout=120)
        os.close(self.master)
        return code


def stderr_line(result: subprocess.CompletedProcess) -> str:
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    return line.removeprefix("CommandError: ")
