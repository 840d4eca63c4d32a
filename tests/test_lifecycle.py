"""The life cycle, driven by a machine: Hypothesis picks random sequences of deploys, writes,
rollbacks (by tag, commit prefix, "previous", from the admin's background runner), dry runs,
rehearsals, restores, purges, kills and Ctrl-C at random moments, concurrent saves and locks
held by other sessions, on the blog project (tests/lifecycle/project.py), and checks the
invariants after every step. docs/lifecycle.md says how to run it, rerun a failure and soak.

LIFECYCLE_EXAMPLES (default 3) sequences of LIFECYCLE_STEPS (default 12) steps per backend."""

from __future__ import annotations

import os
import random
import signal
import time
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
)

from . import dbtools
from .gitrepo import git
from .lifecycle import probes
from .lifecycle.commands import SIGNALS, Outcome, Runner, finish
from .lifecycle.project import (
    COLUMNS,
    REFERENCES,
    TABLE_SINCE,
    TAGS,
    Blog,
    aliases,
    build as build_blog,
    physical,
)
from .lifecycle.reporting import STEPS_RUN, print_failures, run_machine
from .pgbouncer import through
from .test_production_safety import holding_table
from .webhooks import webhook_server

EXAMPLES = int(os.environ.get("LIFECYCLE_EXAMPLES", "3"))
STEPS = int(os.environ.get("LIFECYCLE_STEPS", "12"))
SERVER = dbtools.BACKEND != "sqlite"
ALL_OR_NOTHING = dbtools.BACKEND in ("postgresql", "sqlite")
LAST = len(TAGS) - 1
# Every draw has the same shape whatever the state (a pick is mapped onto the choices of the
# moment, a seed drives the choices inside a rule): kills and races make the state differ
# between runs of one sequence, and Hypothesis refuses data generation that depends on it.
PICK = st.integers(0, 999)
SEED = st.integers(0, 2**32 - 1)
# The column that tells a row of the machine's apart (a unique text), to find the key the
# database gave it: rows are written with keys from the database, as the site writes them, so
# that a key counter started afresh after a rollback (a re-created table) shows as a loss.
MARKER = {
    "auth_user": "username",
    "blog_author": "name",
    "blog_post": "title",
    "blog_tag": "label",
    "blog_comment": "body",
}


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory, databases: dbtools.Databases) -> Blog:
    return build_blog(tmp_path_factory.mktemp("lifecycle"), databases)


class Lifecycle(RuleBasedStateMachine):
    """One database, one checkout; the model: the release deployed, the release checked out,
    the saved states, and every value ever written."""

    blog: Blog
    databases: dbtools.Databases
    route_url: Any  # url → the URL the commands use (direct or through PgBouncer)
    options: dict[str, object]
    route: str  # "direct" or "pgbouncer"

    def __init__(self) -> None:
        super().__init__()
        self.steps_before = STEPS_RUN[0]
        self.url = self.databases.clone(self.blog.template_url, "life")
        # Every notification the commands send lands here: one per event, never lost.
        self.webhooks = webhook_server("ok")
        self.hooks = self.webhooks.__enter__()
        notify = {"WEBHOOKS": [self.hooks.url], "TIMEOUT": 5}
        self.runner = Runner(
            self.blog.repo, self.route_url(self.url), self.options, {"NOTIFY": notify}
        )
        start = self.blog.start
        self.release = start  # deployed: the database equals this release's
        self.head = start  # checked out
        self.states = list(range(start + 1))  # releases whose state is saved, oldest first
        # (table, logical column, pk) → value: everything the machine ever wrote and did not
        # give up on purpose (a purge); in the live tables or in a kept archive.
        self.expected: dict[tuple[str, str, int], Any] = {}
        self.next_token = 1  # makes every text the machine writes unique
        self.killed_logs: set[int] = set()  # entries whose process was SIGKILLed
        self.signalled_logs: set[int] = set()  # entries whose process got SIGKILL or SIGINT
        self.signalled = False  # the rule running now signalled its command
        self.halted: str | None = None  # why the sequence cannot go on (see half_done_step)
        self.last_check: tuple[Any, ...] = ()
        self.rollbacks = 0  # restores and purges wait for the first one
        self.checkout(start)

    def teardown(self) -> None:
        self.webhooks.__exit__(None, None, None)
        if os.environ.get("LIFECYCLE_STEPS_FILE"):  # the soak counts steps example by example
            with open(os.environ["LIFECYCLE_STEPS_FILE"], "a") as out:
                out.write(f"{dbtools.BACKEND} {self.route} {STEPS_RUN[0] - self.steps_before}\n")
        name = urlparse(self.url).path.lstrip("/")
        if dbtools.BACKEND == "postgresql":
            dbtools.execute(
                self.url.replace(name, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            )
        elif dbtools.BACKEND == "mysql":
            dbtools.execute(self.url, f'DROP DATABASE IF EXISTS "{name}"')

    # --- helpers ---------------------------------------------------------------------------

    def checkout(self, release: int) -> None:
        git(self.blog.repo, "checkout", "-q", "--detach", TAGS[release])
        self.head = release

    def note(self, text: str) -> None:
        print(f"  [{TAGS[self.release] if self.release is not None else '?'}] {text}")

    def snapshot(self) -> dict[str, Any]:
        return {
            "schema": dbtools.schema(self.url),
            "applied": dbtools.applied(self.url),
            "states": probes.saved_states(self.url),
            "values": self.all_values(),
        }

    def all_values(self) -> dict[str, Any]:
        out = {}
        for table in dbtools.tables(self.url):
            if table.startswith(("blog_", "auth_user")):
                out[table] = sorted(map(repr, dbtools.query(self.url, f'SELECT * FROM "{table}"')))
        return out

    def assert_unchanged(self, before: dict[str, Any], outcome: Outcome) -> None:
        after = self.snapshot()
        for key in before:
            assert after[key] == before[key], f"{key} changed by a refused command:\n{outcome}"

    def new_logs(self, since: int) -> list[dict[str, Any]]:
        return [e for e in probes.log_entries(self.url) if e["id"] > since]

    def last_log_id(self) -> int:
        entries = probes.log_entries(self.url)
        return entries[-1]["id"] if entries else 0

    def rolled_back_to(self, target: int) -> None:
        """What a finished rollback changes: the database is the target's, newer states
        are gone."""
        self.release = target
        self.states = [s for s in self.states if s <= target]
        self.rollbacks += 1

    def can_roll_back(self) -> bool:
        """HEAD's state is the current one and there is an older one."""
        return self.head == self.release and bool(self.targets())

    def targets(self) -> list[int]:
        """Saved states a rollback from HEAD may go to."""
        return [s for s in self.states if s < self.head]

    def half_done_step(self, outcome: Outcome) -> bool:
        """MariaDB only: a signal that lands inside a step (its DDL statements commit one by
        one) leaves that step half done, as Django's own migrate would; no release's schema
        describes it, and the sequence ends there (halted), said in the log."""
        if ALL_OR_NOTHING or outcome.returncode not in (-signal.SIGKILL, -signal.SIGINT, 1):
            return False
        applied = dbtools.applied(self.url)
        for release in self.blog.releases:
            if release.applied == applied and release.schema == dbtools.schema(self.url):
                return False
        self.halted = f"a signal cut a step short (MariaDB, no transactional DDL):\n{outcome}"
        self.note(f"halted: {self.halted.splitlines()[0]}")
        return True

    def adopt(self, target: int, outcome: Outcome, since: int) -> None:
        """After a rollback that may have been cut short (signal, lock, concurrent command):
        all of it or none of it happened (PostgreSQL, SQLite), or exactly the steps its log
        entry says (MariaDB), and then the same rollback, run again, finishes it."""
        applied = dbtools.applied(self.url)
        if applied == self.blog.releases[target].applied:
            self.rolled_back_to(target)
            return
        if applied == self.blog.releases[self.release].applied:
            return
        assert not ALL_OR_NOTHING, f"half a rollback is applied:\n{outcome}\n{sorted(applied)}"
        entries = [e for e in self.new_logs(since) if e["status"] not in ("dry_run", "rehearsal")]
        assert entries, f"a partial rollback without a log entry:\n{outcome}"
        entry = entries[-1]
        steps = [tuple(s["migration"].split(".", 1)) for s in entry["plan"]["steps"]]
        done = set(steps[: entry["steps_done"]])
        before = set(self.blog.releases[self.release].applied)
        assert applied == before - done, (
            f"log entry {entry['id']} says {entry['steps_done']} of {len(steps)} steps ran "
            f"({entry['status']}), the database has {sorted(before - applied)} unapplied:\n"
            f"{outcome}"
        )
        self.note(f"partial: {entry['steps_done']}/{len(steps)} steps; the same rollback again")
        again = self.runner.run(
            "rollback_migrations", "-c", self.blog.releases[target].sha, "--no-input"
        )
        if again.returncode != 0 and self.signalled and self.half_done_step(outcome):
            return  # the step the signal landed in is half done: the rerun cannot redo it
        assert again.returncode == 0, f"finishing a partial rollback failed:\n{again}"
        self.rolled_back_to(target)

    # --- rules -----------------------------------------------------------------------------

    @rule(pick=PICK)
    def deploy(self, pick: int) -> None:
        """A container of a newer release starts: checkout, migrate, save_migrations_state."""
        if self.release == LAST:
            return
        target = self.release + 1 + pick % (LAST - self.release)
        self.note(f"deploy {TAGS[target]}")
        self.checkout(target)
        self.runner.ok("migrate", "--no-input")
        self.runner.ok("save_migrations_state")
        self.release = target
        self.states.append(target)

    @rule(pick=PICK, count=st.integers(1, 3), seed=SEED)
    def write_rows(self, pick: int, count: int, seed: int) -> None:
        tables = [t for t, since in TABLE_SINCE.items() if since <= self.release]
        table = tables[pick % len(tables)]
        choose = random.Random(seed)
        for _ in range(count):
            self.insert(table, choose)

    def insert(self, table: str, choose: random.Random) -> None:
        values: dict[str, Any] = {}
        token = self.next_token
        self.next_token += 1
        for column, since in COLUMNS[table].items():
            if since > self.release:
                continue
            target = REFERENCES.get((table, column))
            if target is not None:
                live = sorted(probes.live_values(self.url, target, []))
                nullable = column in ("owner_id", "user_id")
                if not live or (nullable and choose.random() < 0.3):
                    if nullable:
                        values[column] = None
                        continue
                    self.insert(target, choose)
                    live = sorted(probes.live_values(self.url, target, []))
                values[column] = choose.choice(live)
            elif column == "score":
                values[column] = choose.randint(1, 999)
            else:
                values[column] = f"{column}-{token}"
        if table == "blog_post_tags":
            taken = set(probes.live_values(self.url, table, ["post_id", "tag_id"]).values())
            if (values["post_id"], values["tag_id"]) in taken:
                return  # unique together: another pair next time
        names = [physical(table, c, self.release) for c in values]
        literals = [sql_literal(v) for v in values.values()]
        if table == "auth_user":
            names += ["password", "is_superuser", "first_name", "last_name", "email"]
            names += ["is_staff", "is_active", "date_joined"]
            literals += ["''", "FALSE", "''", "''", "''", "FALSE", "TRUE", "CURRENT_TIMESTAMP"]
        quoted = ", ".join(f'"{n}"' for n in names)
        dbtools.execute(
            self.url, f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join(literals)})'
        )
        if table == "blog_post_tags":
            where = f"post_id = {values['post_id']} AND tag_id = {values['tag_id']}"
        else:
            marker = physical(table, MARKER[table], self.release)
            where = f'"{marker}" = {sql_literal(values[MARKER[table]])}'
        [(pk,)] = dbtools.query(self.url, f'SELECT id FROM "{table}" WHERE {where}')
        for column, value in values.items():
            self.expected[(table, column, pk)] = value

    @rule(
        how=st.sampled_from(["previous", "tag", "prefix", "background"]),
        pick=PICK,
        older_image=st.booleans(),
    )
    def roll_back(self, how: str, pick: int, older_image: bool) -> None:
        """Roll back from the newer code; then, maybe, the older image is deployed."""
        targets = self.targets()
        if not targets:
            return
        target = self.previous() if how == "previous" else targets[pick % len(targets)]
        args = self.target_args(target, how)
        self.note(f"rollback {' '.join(args) or '(previous)'} via {how} → {TAGS[target]}")
        before = self.snapshot()
        if self.head != self.release:
            # HEAD was rolled back from: refused, nothing changed.
            outcome = self.runner.run("rollback_migrations", *args, "--no-input")
            assert outcome.refused_cleanly(), str(outcome)
            self.assert_unchanged(before, outcome)
            return
        if how == "background":
            outcome = self.background(target)
        else:
            outcome = self.runner.run("rollback_migrations", *args, "--no-input")
        assert outcome.returncode == 0, f"the rollback failed:\n{outcome}"
        assert dbtools.applied(self.url) == self.blog.releases[target].applied, str(outcome)
        self.rolled_back_to(target)
        if older_image:
            self.checkout(self.release)
            self.runner.ok("migrate", "--no-input")
            self.runner.ok("save_migrations_state")

    def previous(self) -> int:
        position = self.states.index(self.head) if self.head in self.states else len(self.states)
        return self.states[position - 1] if position > 0 else self.states[0]

    def target_args(self, target: int, how: str) -> tuple[str, ...]:
        if how == "tag":
            return ("-t", TAGS[target])
        if how in ("prefix", "background"):
            return ("-c", self.blog.releases[target].sha[:8])
        return ()

    def background(self, target: int) -> Outcome:
        """The admin's way: a queued log entry and a detached runner process, waited for."""
        sha = self.blog.releases[target].sha
        script = (
            "import time\n"
            "from django_rollback import background, services\n"
            "from django_rollback.models import RollbackLog\n"
            f"plan = services.plan_rollback(commit={sha!r})\n"
            "log = background.start_rollback(plan, user='machine')\n"
            "deadline = time.monotonic() + 240\n"
            "while time.monotonic() < deadline:\n"
            "    log.refresh_from_db()\n"
            "    if log.status not in RollbackLog.ACTIVE: break\n"
            "    time.sleep(0.2)\n"
            "print(log.status, log.error)\n"
            "raise SystemExit(0 if log.status == 'succeeded' else 1)\n"
        )
        return self.runner.run("shell", "-c", script)

    @rule(run_here=st.booleans(), self_approval=st.booleans())
    def approved_rollback(self, run_here: bool, self_approval: bool) -> None:
        """With approvals on: one person requests the rollback to the previous state, the
        same person may not approve it, a second one does; it then runs from a terminal
        (--approved) or in the admin's background runner."""
        if not self.can_roll_back():
            return
        target = self.previous()
        sha = self.blog.releases[target].sha
        self.note(f"rollback → {TAGS[target]} approved by a second person, run {run_here=}")
        runner = self.runner.with_settings(APPROVALS=1)
        script = (
            "import time\n"
            "from django_rollback import approvals, services\n"
            "from django_rollback.exceptions import ApprovalError\n"
            "from django_rollback.models import RollbackLog\n"
            f"plan = services.plan_rollback(commit={sha!r})\n"
            "log = approvals.request(plan, user='alice', reason='the release is broken')\n"
            f"if {self_approval}:\n"
            "    try:\n"
            "        approvals.approve(log.pk, user='alice')\n"
            "        raise SystemExit('the requester approved her own request')\n"
            "    except ApprovalError:\n"
            "        pass\n"
            f"approvals.approve(log.pk, user='bob', run={not run_here})\n"
            "deadline = time.monotonic() + 240\n"
            f"while {not run_here} and time.monotonic() < deadline:\n"
            "    log.refresh_from_db()\n"
            "    if log.status not in RollbackLog.ACTIVE: break\n"
            "    time.sleep(0.2)\n"
            "print(log.pk)\n"
        )
        outcome = runner.run("shell", "-c", script)
        assert outcome.returncode == 0, str(outcome)
        number = int(outcome.stdout.split()[-1])
        if run_here:
            outcome = runner.run("rollback_migrations", "--approved", str(number), "--no-input")
            assert outcome.returncode == 0, str(outcome)
        [entry] = [e for e in probes.log_entries(self.url) if e["id"] == number]
        assert entry["status"] == "succeeded", f"approved rollback {number}: {entry}"
        assert dbtools.applied(self.url) == self.blog.releases[target].applied, str(outcome)
        told = [d for d in self.hooks.received if d["log_id"] == number]
        assert [d["event"] for d in told][:1] == ["rollback_requested"], told
        self.rolled_back_to(target)

    @rule(how=st.sampled_from(["fake", "rehearse"]))
    def dry_run(self, how: str) -> None:
        """--fake and --rehearse change nothing but the log."""
        self.note(f"rollback --{how}")
        before = self.snapshot()
        outcome = self.runner.run("rollback_migrations", f"--{how}", "--no-input")
        possible = self.head == self.release and self.previous() < self.head
        if how == "rehearse" and not ALL_OR_NOTHING:
            possible = False  # PostgreSQL and SQLite only
        if possible:
            assert outcome.returncode == 0, str(outcome)
        else:
            assert outcome.refused_cleanly() or "Nothing to do" in outcome.stdout, str(outcome)
        self.assert_unchanged(before, outcome)

    @rule(explicit=st.booleans())
    def restore(self, explicit: bool) -> None:
        if not self.rollbacks:
            return
        chosen = self.restorable()
        self.note(f"restore {'log ' + str(chosen['id']) if chosen else '(none restorable)'}")
        before = self.snapshot()
        args = ["restore_rollback_archive"]
        if explicit and chosen is not None:
            args.append(str(chosen["id"]))
        outcome = self.runner.run(*args)
        if chosen is None:
            assert outcome.refused_cleanly(), str(outcome)
            self.assert_unchanged(before, outcome)
            return
        assert outcome.returncode == 0, str(outcome)
        told = [
            d
            for d in self.hooks.received
            if d["event"] == "archive_restored" and d["log_id"] == chosen["id"]
        ]
        assert len(told) == 1, f"{len(told)} archive_restored notifications:\n{outcome}"
        held = probes.archive_values(self.url, chosen)
        for (table, column, pk), value in self.expected.items():
            for name in aliases(table, column):
                if held.get((table, name, pk), object()) == value:
                    live = self.live(table, column).get(pk)
                    assert live == value, (
                        f"{table}.{column} of row {pk} was {value!r} in archive "
                        f"{chosen['id']}, after the restore it is {live!r}:\n{outcome}"
                    )

    def restorable(self) -> dict[str, Any] | None:
        """The archive restore_rollback_archive should pick: the newest kept one whose
        tables and columns all exist now."""
        for entry in probes.kept_archives(self.url):
            if entry["status"] != "succeeded":
                continue
            if all(self.exists(i["table"], i["column"]) for i in entry["archive"]["items"]):
                return entry
        return None

    def exists(self, table: str, column: str | None) -> bool:
        if table not in dbtools.tables(self.url):
            return False
        return column is None or column in probes.columns(self.url, table)

    @rule(pick=PICK, everything=st.booleans())
    def purge(self, pick: int, everything: bool) -> None:
        """Purging gives up the purged archives' data on purpose: forget what only they held."""
        kept = probes.kept_archives(self.url)
        if not kept:
            return
        if everything or not kept:
            chosen = kept
            args: tuple[str, ...] = ("--purge-older-than", "0")
        else:
            chosen = [kept[pick % len(kept)]]
            args = ("--purge", str(chosen[0]["id"]))
        self.note(f"purge {[e['id'] for e in chosen]}")
        others = [e for e in kept if e not in chosen]
        keep = set()
        for entry in others:
            keep |= {
                (t, c, pk, repr(v))
                for (t, c, pk), v in probes.archive_values(self.url, entry).items()
            }
        doomed = []
        for entry in chosen:
            for (table, name, pk), value in probes.archive_values(self.url, entry).items():
                doomed.append((table, name, pk, value))
        self.runner.ok("restore_rollback_archive", *args)
        for table, name, pk, value in doomed:
            for column in [c for c in COLUMNS.get(table, {}) if name in aliases(table, c)]:
                key = (table, column, pk)
                if self.expected.get(key, object()) != value:
                    continue
                live = self.live(table, column)
                if pk in live and live[pk] == value:  # (a NULL is not a missing row)
                    continue
                if any((table, a, pk, repr(value)) in keep for a in aliases(table, column)):
                    continue
                del self.expected[key]

    @rule(
        command=st.sampled_from(["rollback", "restore"]),
        signame=st.sampled_from(sorted(SIGNALS)),
        after=st.floats(0.0, 4.0),
        blocked=st.booleans(),
    )
    def interrupt(self, command: str, signame: str, after: float, blocked: bool) -> None:
        """SIGKILL or Ctrl-C a rollback (maybe waiting on a table lock, retrying) or a restore
        at a random moment."""
        if not self.can_roll_back():
            return
        target = self.previous()
        since = self.last_log_id()
        if command == "rollback":
            args: tuple[str, ...] = ("rollback_migrations", "--no-input")
            if blocked and SERVER:
                args += ("--lock-timeout", "0.3", "--retries", "5")
        else:
            args = ("restore_rollback_archive",)
        self.note(f"{signame} {' '.join(args)} after {after:.2f}s{' (blocked)' if blocked else ''}")
        with self.maybe_holding(blocked and SERVER and command == "rollback"):
            outcome = self.runner.signalled(args, SIGNALS[signame], after)
        self.signalled = True
        self.signalled_logs |= {e["id"] for e in self.new_logs(since)}
        if signame == "SIGKILL":
            self.killed_logs |= {
                e["id"] for e in self.new_logs(since) if e["status"] in ("running", "queued")
            }
        if command == "rollback":
            self.adopt(target, outcome, since)
            if self.half_done_step(outcome):
                return
        self.signalled = False
        # Ctrl-C before the command's own handler is in place (Python starting, Django loading)
        # prints Python's KeyboardInterrupt traceback: no harm, the invariants judge the rest.
        lines = outcome.stderr.strip().splitlines() or [""]
        plain_ctrl_c = lines[-1] == "KeyboardInterrupt"
        killed = outcome.returncode == -signal.SIGKILL
        assert killed or plain_ctrl_c or "Traceback" not in outcome.stderr, str(outcome)

    @contextmanager
    def maybe_holding(self, hold: bool):  # type: ignore[no-untyped-def]
        if not hold:
            yield
            return
        with holding_table(self.url, "blog_post"):
            yield

    @rule(delay=st.floats(0.0, 3.0))
    def concurrent_save(self, delay: float) -> None:
        """save_migrations_state (another container starting) while a rollback runs."""
        if not self.can_roll_back():
            return
        target = self.previous()
        since = self.last_log_id()
        self.note(f"rollback with a concurrent save_migrations_state {delay:.2f}s later")
        rollback = self.runner.start("rollback_migrations", "--no-input")
        time.sleep(delay)
        save = self.runner.run("save_migrations_state")
        outcome = finish(rollback, ("rollback_migrations", "--no-input"))
        assert save.returncode == 0 or save.refused_cleanly(), str(save)
        assert outcome.returncode == 0 or outcome.refused_cleanly(), str(outcome)
        self.adopt(target, outcome, since)

    @rule(
        kind=st.sampled_from(["rollback lock", "table"]),
        command=st.sampled_from(["rollback", "restore"]),
    )
    def locked_out(self, kind: str, command: str) -> None:
        """Another session holds the rollback lock (a rollback in another container) or a table
        the plan needs, and the command has a short --lock-timeout."""
        if not self.can_roll_back():
            return
        if kind == "table" and (not SERVER or command == "restore"):
            kind = "rollback lock"
        target = self.previous()
        since = self.last_log_id()
        self.note(f"{command} while another session holds the {kind}")
        before = self.snapshot()
        if command == "rollback":
            args: tuple[str, ...] = (
                "rollback_migrations",
                "--no-input",
                "--lock-timeout",
                "0.5",
                "--retries",
                "1",
            )
        else:
            args = ("restore_rollback_archive",)
        held = (
            dbtools.rollback_lock_held(self.url)
            if kind == "rollback lock"
            else holding_table(self.url, "blog_post")
        )
        with held:
            outcome = self.runner.run(*args)
        if kind == "rollback lock":
            assert outcome.refused_cleanly(), str(outcome)
            self.assert_unchanged(before, outcome)
        elif outcome.returncode == 0:
            assert dbtools.applied(self.url) == self.blog.releases[target].applied, str(outcome)
            self.rolled_back_to(target)
        else:
            assert outcome.refused_cleanly(), str(outcome)
            self.adopt(target, outcome, since)

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def one_release_exactly(self) -> None:
        """The schema and the applied set are those of one release, the model's."""
        applied = dbtools.applied(self.url)
        release = self.blog.releases[self.release]
        assert applied == release.applied, (
            f"applied set is not {release.tag}'s: missing {sorted(release.applied - applied)}, "
            f"extra {sorted(applied - release.applied)}"
        )
        schema = dbtools.schema(self.url)
        assert schema == release.schema, "\n".join(
            [f"schema is not {release.tag}'s:"]
            + [f"- {line}" for line in release.schema if line not in schema]
            + [f"+ {line}" for line in schema if line not in release.schema]
        )

    @invariant()
    def states_as_modelled(self) -> None:
        saved = [commit for commit, _ in probes.saved_states(self.url)]
        assert saved == [self.blog.releases[s].sha for s in self.states], (
            f"saved states {saved} are not those of {[TAGS[s] for s in self.states]}"
        )

    @invariant()
    def no_active_entry_without_a_process(self) -> None:
        for entry in probes.log_entries(self.url):
            if entry["status"] in ("running", "queued"):
                assert entry["id"] in self.killed_logs, (
                    f"log entry {entry['id']} is {entry['status']} but every command has exited "
                    f"(none was SIGKILLed): {entry['error']}"
                )

    @invariant()
    def notified_once_per_event(self) -> None:
        """Every rollback that ended sent one rollback_finished notification with its outcome
        (one whose process was signalled: at most one), dry runs and rehearsals none, and no
        rollback started twice. The admin's runner notifies a moment after the entry ends."""
        problems = probes.settled(self.notification_problems)
        assert not problems, "\n".join(problems)

    def notification_problems(self) -> list[str]:
        sent: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for document in list(self.hooks.received):
            sent.setdefault((document["event"], document["log_id"]), []).append(document)
        problems = []
        for entry in probes.log_entries(self.url):
            number, status = entry["id"], entry["status"]
            started = sent.get(("rollback_started", number), [])
            finished = sent.get(("rollback_finished", number), [])
            if len(started) > 1 or len(finished) > 1:
                problems.append(f"entry {number}: started {len(started)}×, ended {len(finished)}×")
            if status in ("dry_run", "rehearsal") and (started or finished):
                problems.append(f"entry {number} ({status}) sent notifications")
            if status not in ("succeeded", "failed", "interrupted"):
                continue
            if finished and finished[0]["outcome"] != status:
                problems.append(f"entry {number} is {status}, notified {finished[0]['outcome']}")
            if not finished and number not in self.signalled_logs:
                problems.append(f"entry {number} ended {status} without a notification")
        return problems

    @invariant()
    def no_lock_left(self) -> None:
        held = probes.settled(lambda: probes.locks_held(self.url))
        assert not held, f"{held} advisory/named locks held once every command has exited"

    @invariant()
    def check_tells_the_truth(self) -> None:
        states = probes.saved_states(self.url)
        sha = git(self.blog.repo, "rev-parse", "HEAD")
        mine = [applied for commit, applied in states if commit == sha]
        applied = dbtools.applied(self.url)
        truth = bool(mine) and states[-1][0] == sha and mine[0] == applied
        # The answer depends on HEAD, the saved states and the applied set only: ask again
        # when one of them changed (a manage.py costs seconds on a busy machine).
        asked = (sha, tuple(states), frozenset(applied))
        if asked == self.last_check:
            return
        outcome = self.runner.run("rollback_migrations", "--check")
        assert outcome.returncode in (0, 2), str(outcome)
        assert (outcome.returncode == 0) == truth, (
            f"--check says {outcome.returncode}, truth {truth}:\n{outcome}"
        )
        self.last_check = asked

    @invariant()
    def nothing_lost(self) -> None:
        """Every value written is live, or in an archive that can still be restored."""
        archived: dict[tuple[str, str, int], list[Any]] = {}
        for entry in probes.kept_archives(self.url):
            for key, value in probes.archive_values(self.url, entry).items():
                archived.setdefault(key, []).append(value)
        live: dict[tuple[str, str], dict[int, Any]] = {}
        for (table, column, pk), value in self.expected.items():
            if (table, column) not in live:
                live[(table, column)] = self.live(table, column)
            if live[(table, column)].get(pk, object()) == value:
                continue
            if any(value in archived.get((table, a, pk), []) for a in aliases(table, column)):
                continue
            where = (
                "missing" if pk not in live[(table, column)] else repr(live[(table, column)][pk])
            )
            raise AssertionError(
                f"LOST: {table}.{column} = {value!r} of row {pk}: live {where}, in no kept archive"
            )

    def live(self, table: str, column: str) -> dict[int, Any]:
        if TABLE_SINCE[table] > self.release or COLUMNS[table][column] > self.release:
            return {}
        name = physical(table, column, self.release)
        return {pk: row[0] for pk, row in probes.live_values(self.url, table, [name]).items()}


print_failures(Lifecycle)


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


ROUTES = ["direct", "pgbouncer"] if dbtools.BACKEND == "postgresql" else ["direct"]


@pytest.mark.parametrize("route", ROUTES)
def test_lifecycle(
    route: str, blog: Blog, databases: dbtools.Databases, request: pytest.FixtureRequest
) -> None:
    port = request.getfixturevalue("pgbouncer") if route == "pgbouncer" else None

    class Machine(Lifecycle):
        pass

    Machine.blog, Machine.databases, Machine.route = blog, databases, route
    Machine.route_url = staticmethod(lambda url: through(port, url) if port else url)
    Machine.options = {"DISABLE_SERVER_SIDE_CURSORS": True} if port else {}
    run_machine(Machine, EXAMPLES, STEPS)
