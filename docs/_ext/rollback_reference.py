"""Reference pages generated from the code, so that they cannot drift from it.

Two directives:

``django-command NAME``
    The usage line, description and every option of one management command of
    django_rollback, read from the argparse parser that Django builds for it
    (``create_parser("manage.py", NAME)``). Options every Django command has
    (``--settings``, ``--traceback``...) are left to Django's documentation; the build warns
    (an error under ``-W``) when a command of the app is documented nowhere.

``rollback-settings``
    Every key of ``DJANGO_ROLLBACK`` with its default, read from ``django_rollback/conf.py``
    (``DEFAULTS`` and the comment above each key), and the environment variables defined there.

Django is set up once, with ``DJANGO_SETTINGS_MODULE`` (default ``tests.settings``, which needs no
database server: the parsers are only built, never run).
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import re
import sys
import tokenize
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
APP = "django_rollback"
logger = logging.getLogger(__name__)
# An option named in prose: "-t", "--no-archive" (not a dash between words or numbers).
OPTION = re.compile(r"(?<![\w-])--?[a-z][a-z0-9\\_-]*")

_django_ready = False


def setup_django() -> None:
    global _django_ready
    if _django_ready:
        return
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    # argparse wraps usage lines to the terminal: the same width on every machine.
    os.environ["COLUMNS"] = "80"
    import django

    django.setup()
    _django_ready = True


def app_commands() -> list[str]:
    from django.core.management import find_commands

    return sorted(find_commands(str(ROOT / APP / "management")))


def django_common_dests() -> set[str]:
    """The options that every Django command has (BaseCommand's own parser)."""
    from django.core.management.base import BaseCommand

    parser = BaseCommand().create_parser("manage.py", "any")
    return {action.dest for action in parser._actions}


def escape(text: str, *, keep_code: bool = False) -> str:
    """Help text is plain prose: make every character that Markdown could read as markup
    literal (a backslash escapes any ASCII punctuation in CommonMark), and show the options it
    names (`-t`, `--fake`) as code. Comments in conf.py mark code with backticks: keep_code
    lets those spans through untouched."""
    parts = text.split("`") if keep_code else [text]
    for i in range(0, len(parts), 2):  # the even parts are outside backticks
        plain = "".join("\\" + c if c in "\\*|_[]<>{}#!`" else c for c in parts[i])
        parts[i] = OPTION.sub(lambda m: code(m.group(0).replace("\\", "")), plain)
    return "`".join(parts)


def code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if fence == "`" else f"{fence} {text} {fence}"


class MarkdownDirective(SphinxDirective):
    """A directive that generates MyST Markdown and parses it in place (the pages are .md)."""

    def parse_markdown(self, lines: list[str], source: str) -> list[nodes.Node]:
        if self.env.doc2path(self.env.docname).suffix != ".md":
            raise self.error(f"{self.name} generates Markdown: use it from a .md page")
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=source), 0, container)
        return list(container.children)


def signature(action: argparse.Action) -> str:
    if not action.option_strings:
        return action.metavar if isinstance(action.metavar, str) else action.dest
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    if action.metavar is not None:
        metavar = str(action.metavar)
    elif action.choices is not None:
        metavar = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        metavar = action.dest.upper()
    return ", ".join(f"{option} {metavar}" for option in action.option_strings)


def default_note(action: argparse.Action) -> str | None:
    """The default when the help text does not already give it (flags have none worth saying)."""
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return None
    if "default" in (action.help or "").lower():
        return None
    return f"Default: {code(str(action.default))}."


class DjangoCommandDirective(MarkdownDirective):
    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        setup_django()
        from django.core.management import load_command_class

        name = self.arguments[0]
        if name not in app_commands():
            raise self.error(f"{APP} has no management command {name!r}")
        parser = load_command_class(APP, name).create_parser("manage.py", name)
        common = django_common_dests()
        for source in ("base.py", f"commands/{name}.py"):  # where its options are declared
            self.env.note_dependency(str(ROOT / APP / "management" / source))
        self.env.rollback_commands_documented.setdefault(self.env.docname, set()).add(name)

        # Usage without Django's common options, which would only hide this command's own.
        own = [a for a in parser._actions if a.dest not in common and a.help != argparse.SUPPRESS]
        usage = parser.format_usage() if not own else _usage(parser, own)
        lines = [
            "```{program} " + name,
            "```",
            "",
            "```text",
            *usage.rstrip().splitlines(),
            "```",
            "",
        ]
        if parser.description:
            lines += [escape(parser.description, keep_code=True), ""]
        for action in own:
            # as --help prints it: "%(default)s" and the like filled in
            help_text = parser._get_formatter()._expand_help(action) if action.help else ""
            text = escape(help_text, keep_code=True)
            note = default_note(action)
            if note:
                text = f"{text} {note}".strip()
            if action.choices is not None and action.option_strings:
                text += " Choices: " + ", ".join(code(str(c)) for c in action.choices) + "."
            lines += [f"```{{option}} {signature(action)}", text or "(no description)", "```", ""]
        lines += [
            "Besides these, the options every Django command has: "
            "`-v/--verbosity`, `--settings`, `--pythonpath`, `--traceback`, "
            "`--no-color`, `--force-color`, `--version` and `-h/--help`.",
            "",
        ]
        return self.parse_markdown(lines, f"<{APP} command {name}>")


def _usage(parser: argparse.ArgumentParser, actions: list[argparse.Action]) -> str:
    formatter = parser._get_formatter()
    formatter.add_usage(parser.usage, actions, parser._mutually_exclusive_groups)
    return formatter.format_help()


class SettingsDirective(MarkdownDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        source = (ROOT / APP / "conf.py").read_text()
        lines: list[str] = []
        for keys, comment in settings_groups(source):
            lines += ["```{rubric} " + ", ".join(key for key, _ in keys), "```", ""]
            for key, default in keys:
                label = "Default" + ("" if len(keys) == 1 else f" of {code(key)}")
                if "\n" in default:
                    lines += [f"{label}:", "", "```python", *default.splitlines(), "```", ""]
                else:
                    lines += [f"{label}: {code(default)}", ""]
            if not comment:
                logger.warning(
                    "setting %s has no comment above it in django_rollback/conf.py",
                    keys[0][0],
                    location=(self.env.docname, self.lineno),
                )
            lines += [escape(comment, keep_code=True), ""]
        env_vars = environment_variables(source)
        if env_vars:
            lines += ["```{rubric} Environment variables", "```", ""]
            for intro in dict.fromkeys(above for _, _, above, _ in env_vars if above):
                lines += [escape(intro, keep_code=True), ""]
            for name, setting, _, beside in env_vars:
                text = f"Read before the setting {code(setting)}."
                if beside:
                    text += " " + escape(beside[:1].upper() + beside[1:], keep_code=True) + "."
                lines += [code(name), f": {text}", ""]
        self.env.note_dependency(str(ROOT / APP / "conf.py"))
        return self.parse_markdown(lines, f"<{APP}/conf.py>")


def comments_by_line(source: str) -> dict[int, str]:
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found[token.start[0]] = token.string.lstrip("#").strip()
    return found


def comment_above(comments: dict[int, str], lines: list[str], line: int) -> str:
    """The block of whole-line comments directly above a line, joined into one paragraph."""
    parts: list[str] = []
    n = line - 1
    while n in comments and lines[n - 1].lstrip().startswith("#"):
        parts.insert(0, comments[n])
        n -= 1
    return " ".join(parts)


def settings_groups(source: str) -> list[tuple[list[tuple[str, str]], str]]:
    """[( [(KEY, default source)...], comment )]: a key without a comment of its own shares
    the comment of the key before it (conf.py describes LOCK_RETRIES and LOCK_RETRY_DELAY at once).
    """
    tree = ast.parse(source)
    comments = comments_by_line(source)
    lines = source.splitlines()
    groups: list[tuple[list[tuple[str, str]], str]] = []
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if not (isinstance(target, ast.Name) and target.id == "DEFAULTS"):
            continue
        assert isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict)
        for key_node, value_node in zip(node.value.keys, node.value.values, strict=True):
            assert isinstance(key_node, ast.Constant)
            default = ast.get_source_segment(source, value_node) or ""
            comment = comment_above(comments, lines, key_node.lineno)
            if not comment and groups:
                groups[-1][0].append((str(key_node.value), default))
            else:
                groups.append(([(str(key_node.value), default)], comment))
    if not groups:
        logger.warning("no DEFAULTS dict found in django_rollback/conf.py")
    return groups


def environment_variables(source: str) -> list[tuple[str, str, str, str]]:
    """Module constants named X_ENV: (the variable's name, the setting X it stands before,
    the comment above it, the comment beside it)."""
    tree = ast.parse(source)
    comments = comments_by_line(source)
    lines = source.splitlines()
    found = []
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        if not (isinstance(target, ast.Name) and target.id.endswith("_ENV")):
            continue
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            continue
        beside = comments.get(node.lineno, "")
        above = comment_above(comments, lines, node.lineno)
        found.append((node.value.value, target.id.removesuffix("_ENV"), above, beside))
    return found


def purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    env.rollback_commands_documented.pop(docname, None)


def merge(app: Sphinx, env: BuildEnvironment, docnames: Any, other: BuildEnvironment) -> None:
    for docname in docnames:
        if docname in other.rollback_commands_documented:
            env.rollback_commands_documented[docname] = other.rollback_commands_documented[docname]


def init_env(app: Sphinx, env: BuildEnvironment, docnames: Any) -> None:
    if not hasattr(env, "rollback_commands_documented"):
        env.rollback_commands_documented = {}


def check_all_documented(app: Sphinx, env: BuildEnvironment) -> None:
    setup_django()
    documented = set().union(*env.rollback_commands_documented.values())
    for name in app_commands():
        if name not in documented:
            logger.warning(
                "management command %s is not documented: add a django-command directive for it",
                name,
            )


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("django-command", DjangoCommandDirective)
    app.add_directive("rollback-settings", SettingsDirective)
    app.connect("env-before-read-docs", init_env)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    app.connect("env-check-consistency", check_all_documented)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
