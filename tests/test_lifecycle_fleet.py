"""The life cycle of a django-tenants fleet, driven by a machine (PostgreSQL): Hypothesis picks
random sequences of deploys (`migrate_schemas` and a save, of any release not older than the
database), rows written in the tenants, tenants created, fleet rollbacks (by tag or commit
prefix, one or two processes, with or without --atomic and --skip-unsaved), dry runs, a tenant
whose table another session reads, and coordinators killed at a random moment (alone, or with
their worker processes), on the project of test_tenants.py. After every step it checks that
each schema is exactly one release's (its tables and its applied set), the model's; that each
schema's saved states are the model's; that what each schema's preview counted is what its
archive kept; that nothing is left prepared or locked once the commands have exited; that no
log entry is running without a process; and that no value written is lost (live, or in a kept
archive of its schema).

LIFECYCLE_FLEET_EXAMPLES (default 3) sequences of LIFECYCLE_FLEET_STEPS (default 8) steps."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from . import dbtools
from .gitrepo import git
from .lifecycle import probes
from .lifecycle.reporting import STEPS_RUN, print_failures, run_machine
from .tenants_project import create_tenant_code
from .test_lifecycle import PICK
from .test_tenants import TenantHistory, TenantProject, build_tenant_history, counted

EXAMPLES = int(os.environ.get("LIFECYCLE_FLEET_EXAMPLES", "3"))
STEPS = int(os.environ.get("LIFECYCLE_FLEET_STEPS", "8"))
TAGS = ("v1.0.0", "v1.1.0", "v2.0.0")
NEW_TENANTS = ("epsilon", "zeta")
# (table, column) → the first release that has it.
COLUMNS = {
    ("notes_note", "title"): 0,
    ("notes_note", "body"): 1,
    ("notes_label", "name"): 1,
    ("notes_comment", "text"): 2,
}


def normalized(dump: list[str], schema: str) -> list[str]:
    """A schema's dump with its name taken out, so that tenants compare with one another."""
    name = re.compile(rf"\b{re.escape(schema)}\b")
    return sorted(name.sub("SCHEMA", line) for line in dump)


def applied_in(url: str, schema: str) -> frozenset[tuple[str, str]]:
    rows = dbtools.query(url, f'SELECT app, name FROM "{schema}".django_migrations')
    return frozenset((a, n) for a, n in rows)


def tenant_schemas(url: str) -> list[str]:
    rows = dbtools.query(url, "SELECT schema_name FROM public.customers_client")
    return sorted(r[0] for r in rows if r[0] != "public")


def prepared(url: str) -> list[str]:
    rows = dbtools.query(
        url, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
    )
    return [r[0] for r in rows]


def sessions(url: str) -> int:
    [(count,)] = dbtools.query(
        url,
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()",
    )
    return int(count)


@pytest.fixture(scope="module")
def fleet_history(
    tmp_path_factory: pytest.TempPathFactory, databases: dbtools.Databases
) -> TenantHistory:
    if dbtools.BACKEND != "postgresql":
        pytest.skip("django-tenants keeps each tenant in a PostgreSQL schema: PostgreSQL only")
    return build_tenant_history(tmp_path_factory.mktemp("fleetlife"), databases)


class FleetLifecycle(RuleBasedStateMachine):
    """One django-tenants database, one checkout; the model: each schema's release and saved
    states, the release checked out, and every value written."""

    history: TenantHistory
    databases: dbtools.Databases
    # per release: (normalized dump, applied set) of a tenant schema and of the public one
    tenant_refs: list[tuple[list[str], frozenset[tuple[str, str]]]]
    public_refs: list[tuple[list[str], frozenset[tuple[str, str]]]]

    def __init__(self) -> None:
        super().__init__()
        self.steps_before = STEPS_RUN[0]
        history = self.history
        self.url = self.databases.clone(history.releases["v2.0.0"].template_url, "fleetlife")
        self.project = TenantProject(history.repo, self.url)
        self.shas = [history.releases[tag].sha for tag in TAGS]
        self.checkout(2)
        self.at = {name: 2 for name in ("public", *tenant_schemas(self.url))}
        # release indices of each schema's saved states, oldest first
        self.saved = {name: [0, 1, 2] for name in self.at}
        self.saved["delta"] = [2]  # created at v2.0.0 (test_tenants.py)
        self.expected: dict[tuple[str, str, str, int], Any] = {}
        self.allowed_running: set[tuple[str, int]] = set()  # entries of killed commands
        self.next_token = 1
        self.made = 0

    def teardown(self) -> None:
        if os.environ.get("LIFECYCLE_STEPS_FILE"):
            with open(os.environ["LIFECYCLE_STEPS_FILE"], "a") as out:
                out.write(f"postgresql fleet {STEPS_RUN[0] - self.steps_before}\n")
        name = self.url.rsplit("/", 1)[1]
        dbtools.execute(
            self.url.replace(name, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )

    # --- helpers ---------------------------------------------------------------------------

    def checkout(self, release: int) -> None:
        git(self.history.repo, "checkout", "-q", TAGS[release])
        self.head = release

    def note(self, text: str) -> None:
        print(f"  step: {text}")

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.project.manage(*args)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def ref(self, release: int, pick: int) -> list[str]:
        """The target by tag, or by a prefix of its commit."""
        return ["-t", TAGS[release]] if pick % 2 else ["-c", self.shas[release][:10]]

    def forecast(self, target: int) -> dict[str, str]:
        """What the fleet should make of each schema: done, unsaved (no state at the target),
        refused (the state of the commit checked out is not saved there: a rollback from it
        already ran, the older release must be deployed first) or planned."""

        def status(name: str) -> str:
            if self.at[name] == target:
                return "done"
            if target not in self.saved[name]:
                return "unsaved"
            return "refused" if self.head not in self.saved[name] else "planned"

        return {name: status(name) for name in self.at}

    def refusal(self, target: int, forecast: dict[str, str], skip: bool) -> list[str]:
        """The words the whole run is refused with (nothing runs anywhere), or []."""
        if target not in self.saved["public"]:  # the fleet finds its target in public's states
            return ["the public schema never saved"]
        refused = sorted(n for n, what in forecast.items() if what == "refused")
        unsaved = "unsaved" in forecast.values() and not skip
        if not refused and not unsaved:
            return []
        words = ["Refusing to roll back any schema: "]
        if refused:
            words.append(f"target{'s' if len(refused) != 1 else ''} refused (")
        if unsaved:
            words.append("--skip-unsaved")
        return words

    def rolled_back(self, name: str, target: int) -> None:
        self.at[name] = target
        states = self.saved[name]
        self.saved[name] = states[: states.index(target) + 1]  # the newer ones are pruned

    def rollback_args(self, ref: list[str], jobs: int, atomic: bool, skip: bool) -> list[str]:
        args = ["rollback_migrations", *ref, "--no-input", "--json", "--jobs", str(jobs)]
        return args + ["--atomic"] * atomic + ["--skip-unsaved"] * skip

    def statuses(self, result: subprocess.CompletedProcess[str]) -> dict[str, str]:
        document = json.loads(result.stdout)
        return {entry["schema"]: entry["status"] for entry in document.get("targets", [])}

    # --- rules -----------------------------------------------------------------------------

    @rule(pick=PICK)
    def deploy(self, pick: int) -> None:
        """A release not older than any schema: its code checked out, migrate_schemas, save."""
        choices = list(range(max(self.at.values()), len(TAGS)))
        release = choices[pick % len(choices)]
        self.note(f"deploy {TAGS[release]}")
        self.checkout(release)
        assert self.manage("migrate_schemas", "--noinput").returncode == 0
        result = self.manage("save_migrations_state")
        assert result.returncode == 0, result.stderr
        for name in self.at:
            self.at[name] = release
            if release not in self.saved[name]:
                self.saved[name].append(release)

    @rule(pick=PICK, count=st.integers(1, 3))
    def write(self, pick: int, count: int) -> None:
        """Rows written by the site in one tenant, in the columns its release has."""
        tenants = sorted(name for name in self.at if name != "public")
        name = tenants[pick % len(tenants)]
        release = self.at[name]
        self.note(f"write {count} rows in {name} ({TAGS[release]})")
        for _ in range(count):
            token = f"{name}-{self.next_token}"
            self.next_token += 1
            values = {"title": f"t {token}"} | ({"body": f"b {token}"} if release >= 1 else {})
            names = ", ".join(values)
            literals = ", ".join(f"'{v}'" for v in values.values())
            [(note,)] = dbtools.query(
                self.url,
                f'INSERT INTO "{name}".notes_note ({names}) VALUES ({literals}) RETURNING id',
            )
            for column, value in values.items():
                self.expected[(name, "notes_note", column, note)] = value
            if release >= 1:
                [(label,)] = dbtools.query(
                    self.url,
                    f"INSERT INTO \"{name}\".notes_label (name) VALUES ('l {token}') RETURNING id",
                )
                self.expected[(name, "notes_label", "name", label)] = f"l {token}"
            if release >= 2:
                [(comment,)] = dbtools.query(
                    self.url,
                    f'INSERT INTO "{name}".notes_comment (note_id, text) '
                    f"VALUES ({note}, 'c {token}') RETURNING id",
                )
                self.expected[(name, "notes_comment", "text", comment)] = f"c {token}"

    @rule(
        pick=PICK,
        jobs=st.sampled_from([1, 2]),
        atomic=st.booleans(),
        skip=st.booleans(),
        dry=st.booleans(),
    )
    def roll_back(self, pick: int, jobs: int, atomic: bool, skip: bool, dry: bool) -> None:
        """The fleet back to an older release; refused whole when a schema has no state saved
        there and --skip-unsaved is not given."""
        if self.head == 0:
            return
        target = pick % self.head
        forecast = self.forecast(target)
        args = self.rollback_args(self.ref(target, pick), jobs, atomic, skip)
        if dry:
            args.append("--fake")
        self.note(f"{' '.join(args[1:])} (forecast {forecast})")
        result = self.manage(*args)
        refusal = self.refusal(target, forecast, skip)
        if refusal:
            assert result.returncode == 1, result.stdout + result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and all(w in lines[0] for w in refusal), result.stderr
            return
        assert result.returncode == 0, result.stdout + result.stderr
        statuses = self.statuses(result)
        expected = {
            name: {
                "done": "done",
                "unsaved": "skipped",
                "planned": "planned" if dry else "succeeded",
            }[what]
            for name, what in forecast.items()
        }
        assert statuses == expected, result.stdout
        if not dry:
            self.previews_counted_what_was_kept(json.loads(result.stdout))
            for name, what in forecast.items():
                if what == "planned":
                    self.rolled_back(name, target)

    def previews_counted_what_was_kept(self, document: dict[str, Any]) -> None:
        """Each schema's preview counted its own rows (its plan shared with others or not):
        what its archive kept."""
        for entry in document["targets"]:
            if entry["status"] == "succeeded":
                preview = sum(map(counted, entry["data_loss"]))
                kept = entry["archive"]["rows"] if entry["archive"] else 0  # nothing dropped
                assert kept == preview, entry

    @rule(pick=PICK, atomic=st.booleans())
    def tenant_held_by_a_reader(self, pick: int, atomic: bool) -> None:
        """A session of the site reads the table a tenant's rollback must drop: that tenant
        fails within --lock-timeout; without --atomic the others go back and public is held,
        with it nothing changes anywhere."""
        import psycopg2  # the PostgreSQL leg has it

        if self.head == 0:
            return
        target = pick % self.head
        forecast = self.forecast(target)
        held = sorted(n for n, w in forecast.items() if w == "planned" and n != "public")
        if not held or self.refusal(target, forecast, True):
            return
        name = held[pick % len(held)]
        table = "notes_comment" if self.at[name] == 2 else "notes_label"
        args = self.rollback_args(self.ref(target, pick), 2, atomic, True)
        args += ["--lock-timeout", "1", "--retries", "0"]
        self.note(f"{' '.join(args[1:])} while a session reads {name}.{table}")
        reader = psycopg2.connect(**_connect_options(self.url))
        try:
            with reader.cursor() as cursor:
                cursor.execute(f'SELECT COUNT(*) FROM "{name}".{table}')
            result = self.manage(*args)
        finally:
            reader.close()
        assert result.returncode == 1, result.stdout + result.stderr
        statuses = self.statuses(result)
        assert statuses[name] == "failed", result.stdout
        for other, what in forecast.items():
            if other == name or what != "planned":
                continue
            if atomic:
                assert statuses[other] in ("aborted", "planned"), (other, result.stdout)
            elif other == "public":
                assert statuses[other] == "held", result.stdout
            else:
                assert statuses[other] == "succeeded", (other, result.stdout)
                self.rolled_back(other, target)

    @rule(
        pick=PICK,
        delay=st.floats(0.0, 6.0),
        atomic=st.booleans(),
        whole_group=st.booleans(),
    )
    def coordinator_killed(self, pick: int, delay: float, atomic: bool, whole_group: bool) -> None:
        """SIGKILL at a random moment, to the coordinator alone (its workers go on or stop by
        themselves) or to it and its workers (a container killed); then --check resolves what
        it left prepared. Each schema is where it was or at the target; with --atomic all of
        them are together, and public never goes back before every tenant."""
        if self.head == 0:
            return
        target = pick % self.head
        forecast = self.forecast(target)
        planned = [n for n, w in forecast.items() if w == "planned"]
        if self.refusal(target, forecast, True):
            return  # refused before anything runs (roll_back checks it)
        args = self.rollback_args(self.ref(target, pick), 2, atomic, True)
        self.note(
            f"{' '.join(args[1:])}, SIGKILL after {delay:.2f}s "
            f"({'with its workers' if whole_group else 'coordinator only'})"
        )
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=self.project.path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tenantsite.settings",
                "DATABASE_URL": self.url,
                "PYTHONDONTWRITEBYTECODE": "1",
            },
        )
        time.sleep(delay)
        if whole_group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(signal.SIGKILL)
        process.wait(30)
        _wait_for_group(process.pid)
        check = self.manage("rollback_migrations", "--check")
        assert not prepared(self.url), check.stderr
        moved = [
            name
            for name in planned
            if applied_in(self.url, name) != self.applied_ref(name, self.at[name])
        ]
        for name in moved:
            self.rolled_back(name, target)
        if atomic:
            assert not moved or sorted(moved) == sorted(planned), (moved, planned, check.stderr)
        if "public" in moved:
            assert all(n in moved for n in planned if n != "public"), (moved, planned)
        for name in planned:
            for entry in probes.log_entries(self.url, name):
                if entry["status"] in ("running", "queued"):
                    self.allowed_running.add((name, entry["id"]))

    @rule(fake=st.booleans())
    def restore_archives(self, fake: bool) -> None:
        """restore_rollback_archive --tenants-only: in each tenant, the newest archive whose
        tables and columns all exist again comes back; with none, that tenant fails in one
        line (the others go on), and without any kept archive it has nothing to do."""
        tenants = sorted(name for name in self.at if name != "public")
        kept = {name: probes.kept_archives(self.url, name) for name in tenants}
        chosen = {name: self._restorable(name, entries) for name, entries in kept.items()}
        values = {  # read now: a restore may leave nothing to read in the archive
            name: probes.archive_values(self.url, entry)
            for name, entry in chosen.items()
            if entry is not None
        }
        self.note(f"restore --tenants-only{' --fake' * fake}")
        result = self.manage(
            "restore_rollback_archive", "--tenants-only", "--json", *["--fake"] * fake
        )
        document = json.loads(result.stdout)
        outcomes = {t["schema"]: t for t in document["targets"]}
        assert sorted(outcomes) == tenants, document
        said = ", ".join(f"{name} {outcome['status']}" for name, outcome in outcomes.items())
        self.note(f"  restore: {said}")
        for name in tenants:
            outcome, entry = outcomes[name], chosen[name]
            if not kept[name]:
                assert outcome["status"] == "nothing", outcome
            elif entry is None:
                assert outcome["status"] == "failed", outcome
                assert outcome["error"].startswith("No archive can be restored yet"), outcome
            else:
                assert (outcome["status"], outcome["log_id"]) == ("restored", entry["id"]), outcome
                assert outcome["skipped"] == 0, outcome
                if not fake:
                    self._check_restored(name, entry, values[name])
        failed = any(t["status"] == "failed" for t in outcomes.values())
        assert result.returncode == (1 if failed else 0), result.stdout + result.stderr

    def _restorable(self, name: str, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The newest of `entries` whose every table (and column) exists in `name` now."""
        rows = dbtools.query(
            self.url,
            f"SELECT table_name, column_name FROM information_schema.columns "
            f"WHERE table_schema = '{name}'",
        )
        tables = {table for table, _ in rows}
        for entry in entries:
            items = entry["archive"]["items"]
            if all(
                (i["table"], i["column"]) in rows if i["column"] else i["table"] in tables
                for i in items
            ):
                return entry
        return None

    def _check_restored(
        self, name: str, entry: dict[str, Any], values: dict[tuple[str, str, int], Any]
    ) -> None:
        """Every value of the restored archive is live again, and the archive is no longer
        kept (a second restore would find the next one)."""
        for (table, column, pk), value in values.items():
            live = probes.live_values(self.url, table, [column], name)
            assert live.get(pk, (object(),))[0] == value, (
                f"{name}.{table}.{column} of row {pk}: {value!r} not restored"
            )
        assert entry["id"] not in [e["id"] for e in probes.kept_archives(self.url, name)]

    @rule()
    def new_tenant(self) -> None:
        """A customer signs up: django-tenants creates the schema and migrates it to the code's
        release; half the time its state is saved at once (as an entrypoint would)."""
        if self.made >= len(NEW_TENANTS) or self.at["public"] != self.head:
            return  # the code writes columns of its release into public's tenant table
        name = NEW_TENANTS[self.made]
        self.made += 1
        self.note(f"create tenant {name} at {TAGS[self.head]}")
        assert self.manage("shell", "-c", create_tenant_code(name)).returncode == 0
        self.at[name] = self.head
        self.saved[name] = []
        if self.made % 2:
            result = self.manage("save_migrations_state", "--schemas", name)
            assert result.returncode == 0, result.stderr
            self.saved[name] = [self.head]

    # --- invariants ------------------------------------------------------------------------

    def applied_ref(self, name: str, release: int) -> frozenset[tuple[str, str]]:
        refs = self.public_refs if name == "public" else self.tenant_refs
        return refs[release][1]

    @invariant()
    def each_schema_exactly_one_release(self) -> None:
        assert sorted(self.at) == sorted(["public", *tenant_schemas(self.url)])
        for name, release in self.at.items():
            refs = self.public_refs if name == "public" else self.tenant_refs
            dump, applied = refs[release]
            assert applied_in(self.url, name) == applied, (
                f"{name}: applied set is not {TAGS[release]}'s"
            )
            mine = normalized(dbtools.pg_schema_of(self.url, name), name)
            assert mine == dump, "\n".join(
                [f"{name}: schema is not {TAGS[release]}'s:"]
                + [f"- {line}" for line in dump if line not in mine]
                + [f"+ {line}" for line in mine if line not in dump]
            )

    @invariant()
    def states_as_modelled(self) -> None:
        for name, releases in self.saved.items():
            saved = [commit for commit, _ in probes.saved_states(self.url, name)]
            assert saved == [self.shas[r] for r in releases], (
                f"{name}: saved states are not those of {[TAGS[r] for r in releases]}"
            )

    @invariant()
    def nothing_prepared_or_locked(self) -> None:
        assert not probes.settled(lambda: prepared(self.url)), prepared(self.url)
        held = probes.settled(lambda: probes.locks_held(self.url))
        assert not held, f"{held} advisory locks held once every command has exited"

    @invariant()
    def no_active_entry_without_a_process(self) -> None:
        for name in self.at:
            for entry in probes.log_entries(self.url, name):
                if entry["status"] in ("running", "queued"):
                    assert (name, entry["id"]) in self.allowed_running, (
                        f"{name}: log entry {entry['id']} is {entry['status']} and no command "
                        "was killed under it"
                    )

    @invariant()
    def nothing_lost(self) -> None:
        archived: dict[tuple[str, str, str, int], list[Any]] = {}
        live: dict[tuple[str, str, str], dict[int, Any]] = {}
        for name in {key[0] for key in self.expected}:
            for entry in probes.kept_archives(self.url, name):
                for (table, column, pk), value in probes.archive_values(self.url, entry).items():
                    archived.setdefault((name, table, column, pk), []).append(value)
            for (table, column), since in COLUMNS.items():
                if since <= self.at[name]:
                    rows = probes.live_values(self.url, table, [column], name)
                    live[(name, table, column)] = {pk: row[0] for pk, row in rows.items()}
        for (name, table, column, pk), value in self.expected.items():
            if live.get((name, table, column), {}).get(pk, object()) == value:
                continue
            assert value in archived.get((name, table, column, pk), []), (
                f"LOST: {name}.{table}.{column} = {value!r} of row {pk}: not live, in no kept "
                "archive"
            )


def _connect_options(url: str) -> dict[str, Any]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "dbname": parsed.path.lstrip("/"),
    }


def _wait_for_group(pgid: int, seconds: float = 120.0) -> None:
    """Until no process of the killed command's group is left: a worker may finish the schema
    it was rolling back after its coordinator died."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"processes of group {pgid} still running"
        time.sleep(0.1)


print_failures(FleetLifecycle)


def _machine_class(history: TenantHistory, databases: dbtools.Databases) -> type[FleetLifecycle]:
    """The machine bound to the fleet's history: each release's tenant and public schema."""
    templates = {tag: history.releases[tag].template_url for tag in TAGS}

    class Machine(FleetLifecycle):
        pass

    Machine.history, Machine.databases = history, databases
    Machine.tenant_refs = [
        (
            normalized(history.releases[tag].schemas["alpha"], "alpha"),
            applied_in(templates[tag], "alpha"),
        )
        for tag in TAGS
    ]
    Machine.public_refs = [
        (
            normalized(history.releases[tag].schemas["public"], "public"),
            applied_in(templates[tag], "public"),
        )
        for tag in TAGS
    ]
    return Machine


def test_fleet_lifecycle(fleet_history: TenantHistory, databases: dbtools.Databases) -> None:
    run_machine(_machine_class(fleet_history, databases), EXAMPLES, STEPS)


def test_fleet_archives_come_back_in_the_machine(
    fleet_history: TenantHistory, databases: dbtools.Databases
) -> None:
    """One sequence the random ones reach only now and then, every invariant checked after each
    step: rows written at v2.0.0, the fleet rolled back to v1.0.0 (archived), a restore refused
    in every tenant (the tables are gone), v2.0.0 deployed again, a dry run of the restore, the
    restore (each tenant's archive comes back), and a second restore with nothing restorable."""
    machine = _machine_class(fleet_history, databases)()
    invariants = [
        machine.each_schema_exactly_one_release,
        machine.states_as_modelled,
        machine.nothing_prepared_or_locked,
        machine.no_active_entry_without_a_process,
        machine.nothing_lost,
    ]

    def all_written_values_live() -> None:  # none only in an archive
        assert machine.expected, "the sequence writes rows"
        for (name, table, column, pk), value in machine.expected.items():
            live = probes.live_values(machine.url, table, [column], name)
            assert live.get(pk, (None,))[0] == value, f"{name}.{table}.{column} of row {pk}"

    steps = [
        lambda: machine.write(pick=0, count=2),
        lambda: machine.write(pick=1, count=1),
        lambda: machine.roll_back(pick=0, jobs=2, atomic=False, skip=True, dry=False),
        lambda: machine.restore_archives(fake=False),
        lambda: machine.deploy(pick=2),
        lambda: machine.restore_archives(fake=True),
        lambda: machine.restore_archives(fake=False),
        all_written_values_live,
        lambda: machine.restore_archives(fake=False),
    ]
    try:
        for step in steps:
            step()
            for check in invariants:
                check()
    finally:
        machine.teardown()
