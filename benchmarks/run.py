"""Benchmarks: django-rollback against Django's own ways of unapplying migrations.

    .venv/bin/python benchmarks/run.py                      # everything, 3 runs each
    .venv/bin/python benchmarks/run.py --only rollback --repeat 5 --variants user
    .venv/bin/python benchmarks/run.py --only changelist

Every measurement is one fresh process (`manage.py ...` or `python -c ...`), timed from
start to exit, as a deploy would run it; each rollback starts from a fresh copy of the
deployed database. Reports medians and the ratios of our command to Django's.
Needs PostgreSQL (default postgres://postgres@127.0.0.1:5432; --pg-url to change).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

import synth

REPO = Path(__file__).resolve().parent.parent
PARTS = ["rollback", "onestep", "save", "dryrun", "changelist", "scale", "data", "floor"]

PER_APP = """
import django, sys, json
django.setup()
from django.core.management import call_command
for app, target in json.loads(sys.argv[1]):
    call_command("migrate", app, target, verbosity=0)
"""

EXECUTOR = """
import django, sys, json
django.setup()
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
targets = [tuple(t) for t in json.loads(sys.argv[1])]
executor = MigrationExecutor(connection)
executor.migrate(targets, plan=executor.migration_plan(targets))
"""


# The cheap deploy (default; --real-deploy for Django's forward `migrate`): Django's own
# migrations run for real, the synthetic apps' tables, columns and indexes are created from
# models.py (which always matches the migrations) and their migrations recorded as applied,
# like `migrate --fake`. Django's forward migrate of the "user" variant takes ~18 minutes for
# 2,000 migrations; this takes seconds, and writes the same schema (the schema editor names
# tables, columns, constraints and indexes the same way both times).
DEPLOY = """
import sys
import django
django.setup()
from django.apps import apps
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
executor = MigrationExecutor(connection)
graph = executor.loader.graph
ours = lambda key: key[0].startswith("app")
django_leaves = [key for key in graph.leaf_nodes() if not ours(key)]
executor.migrate(django_leaves, plan=executor.migration_plan(django_leaves))
applied = executor.recorder.applied_migrations()
todo = [key for key in graph.nodes if ours(key) and key not in applied]
changed = {app for app, _ in todo}
tables = set(connection.introspection.table_names())
# One transaction per statement: thousands of tables in one exhaust the lock table.
with connection.schema_editor(atomic=False) as editor, connection.cursor() as cursor:
    for model in apps.get_models():
        meta = model._meta
        if meta.app_label not in changed:
            continue
        if meta.db_table not in tables:
            editor.create_model(model)
            continue
        described = connection.introspection.get_table_description(cursor, meta.db_table)
        columns = {column.name for column in described}
        for field in meta.local_fields:
            if field.column not in columns:
                editor.add_field(model, field)
        names = set(connection.introspection.get_constraints(cursor, meta.db_table))
        for index in meta.indexes:
            if index.name not in names:
                editor.add_index(model, index)
Recorded = executor.recorder.Migration
Recorded.objects.bulk_create([Recorded(app=app, name=name) for app, name in todo])
if sys.argv[1:] == ["head"]:  # content types and permissions, as migrate leaves them
    emit_post_migrate_signal(0, False, "default")
"""


# Every database the benchmarks create starts with this (BENCH_DB_PREFIX to share a server).
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "drbench")


class Postgres:
    def __init__(self, url: str) -> None:
        from urllib.parse import urlparse

        self.url = url.rstrip("/")
        parsed = urlparse(self.url)
        self.args = dict(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password,
        )
        self.created: list[str] = []

    def run(self, sql: str, dbname: str = "postgres") -> list[tuple]:
        import psycopg2

        with closing(psycopg2.connect(dbname=dbname, **self.args)) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []

    def create(self, label: str, template: str | None = None) -> str:
        name = f"{DB_PREFIX}_{label}_{uuid.uuid4().hex[:6]}"
        self.run(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.created.append(name)
        return name

    def exists(self, name: str) -> bool:
        return bool(self.run(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))

    def drop(self, name: str) -> None:
        self.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        for name in self.created:
            self.drop(name)

    def url_of(self, name: str) -> str:
        return f"{self.url}/{name}"

    def applied(self, name: str) -> set[tuple[str, str]]:
        return set(self.run("SELECT app, name FROM django_migrations", name))


def timed(cmd: list[str], cwd: Path, db_url: str) -> float:
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


class Bench:
    def __init__(self, options: argparse.Namespace, pg: Postgres, workdir: Path) -> None:
        self.options, self.pg, self.workdir = options, pg, workdir
        self.rows: list[tuple[str, str, float, float]] = []  # variant, what, median, min

    def record(self, variant: str, what: str, samples: list[float]) -> float:
        median = statistics.median(samples)
        self.rows.append((variant, what, median, min(samples)))
        print(
            f"  {what:<58} median {median:7.2f}s  (runs: {', '.join(f'{s:.2f}' for s in samples)})"
        )
        return median

    def deploy(self, variant: str, spec: synth.Spec) -> tuple[Path, str]:
        project = self.workdir / variant
        kind = "u" if spec.user_fks else "p"
        kind += "d" if spec.data_steps else ""
        kept = f"drbench_{variant}_{kind}{spec.apps}x{spec.migrations}_r{spec.rollback_apps}"
        if self.options.reuse and (project / ".git").exists() and self.pg.exists(kept):
            spec.build()
            synth.git(project, "checkout", "-q", "head")
            print(f"[{variant}] reusing {project} and database {kept}")
            return project, kept
        if project.exists():
            shutil.rmtree(project)
        started = time.perf_counter()
        synth.generate(spec, project)
        print(
            f"[{variant}] generated {spec.apps} apps x {spec.migrations} migrations "
            f"in {time.perf_counter() - started:.1f}s"
        )
        db = self.pg.create(f"{variant}_tmpl")
        url = self.pg.url_of(db)
        for tag in ("base", "minus1", "head"):
            synth.git(project, "checkout", "-q", tag)
            if self.options.real_deploy:
                seconds = timed(manage("migrate", "--no-input"), project, url)
            else:
                seconds = timed([sys.executable, "-c", DEPLOY, tag], project, url)
            timed(manage("save_migrations_state"), project, url)
            how = "migrate" if self.options.real_deploy else "cheap deploy (see DEPLOY)"
            print(f"[{variant}] deployed {tag}: {how} took {seconds:.1f}s")
        if self.options.reuse:  # Django's forward migrate of the "user" variant takes long
            self.pg.drop(kept)
            self.pg.run(f'ALTER DATABASE "{db}" RENAME TO "{kept}"')
            self.pg.created.remove(db)
            return project, kept
        return project, db

    def fresh(self, template: str) -> str:
        return self.pg.create("run", template)

    def interleaved(
        self,
        variant: str,
        project: Path,
        template: str,
        runs: dict[str, tuple[list[str], set[tuple[str, str]]]],
    ) -> list[float]:
        """Each command once per round, rounds repeated, each run on a fresh copy of the
        database: the load of the machine drifts over all of them alike. Returns medians."""
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(self.options.repeat):
            for name, (command, expected) in runs.items():
                db = self.fresh(template)
                samples[name].append(timed(command, project, self.pg.url_of(db)))
                if self.pg.applied(db) != expected:
                    raise SystemExit(f"{name}: the applied migrations are not the expected ones")
                self.pg.drop(db)
        return [self.record(variant, name, values) for name, values in samples.items()]

    def run_variant(self, variant: str) -> None:
        spec = synth.Spec(
            apps=self.options.apps,
            migrations=self.options.migrations,
            rollback_apps=self.options.rollback_apps,
            user_fks=variant == "user",
        )
        project, template = self.deploy(variant, spec)
        py = sys.executable
        parts = self.options.only
        applied_base = self._applied_at(project, template, "base", spec)
        n = spec.rollback_apps
        targets = [[spec.app(i), synth.previous_migration(spec, spec.app(i))] for i in range(n)]
        ratios: dict[str, float] = {}
        if "rollback" in parts or "dryrun" in parts:
            print(f"[{variant}] roll back the last migration of {n} apps")
            at_head = self._applied_at(project, template, "head", spec)
            runs = {
                f"rollback_migrations -t base ({n} apps)": (
                    manage("rollback_migrations", "-t", "base"),
                    applied_base,
                )
            }
            if "rollback" in parts:
                runs[f'call_command("migrate", app, target) x {n}, one process'] = (
                    [py, "-c", PER_APP, json.dumps(targets)],
                    applied_base,
                )
                runs["one MigrationExecutor plan"] = (
                    [py, "-c", EXECUTOR, json.dumps(targets)],
                    applied_base,
                )
            if "dryrun" in parts:
                runs["rollback_migrations -t base --fake (dry run)"] = (
                    manage("rollback_migrations", "-t", "base", "--fake"),
                    at_head,
                )
            ours, *others = self.interleaved(variant, project, template, runs)
            if "rollback" in parts:
                per_app, executor, *others = others
                ratios["rollback / plain executor"] = ours / executor
                ratios["rollback / per-app migrate"] = ours / per_app
            if "dryrun" in parts:
                ratios["dry run / real rollback"] = others[0] / ours
        if "onestep" in parts:
            app = spec.app(n - 1)
            previous = synth.previous_migration(spec, app)
            expected = self._applied_at(project, template, "minus1", spec)
            print(f"[{variant}] roll back 1 migration ({app})")
            ours, django = self.interleaved(
                variant,
                project,
                template,
                {
                    "rollback_migrations (1 step)": (manage("rollback_migrations"), expected),
                    f"manage.py migrate {app} <previous>": (
                        manage("migrate", app, previous),
                        expected,
                    ),
                },
            )
            ratios["1-step rollback / migrate app previous"] = ours / django
        if "save" in parts:
            print(f"[{variant}] save the state (nothing changed) vs check vs migrate")
            db = self.fresh(template)
            url = self.pg.url_of(db)
            commands = {
                "save_migrations_state": manage("save_migrations_state"),
                "manage.py check": manage("check"),
                "manage.py migrate (nothing to do)": manage("migrate"),
            }
            samples: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(self.options.repeat):
                for name, command in commands.items():
                    samples[name].append(timed(command, project, url))
            save, check, migrate = (self.record(variant, k, v) for k, v in samples.items())
            ratios["save / check"] = save / check
            ratios["save / migrate (nothing to do)"] = save / migrate
            self.pg.drop(db)
        for what, ratio in ratios.items():
            print(f"  ratio {what:<50} {ratio:6.2f}")
            self.rows.append((variant, f"ratio: {what}", ratio, ratio))

    def rounds(self, runs: dict[str, tuple[list[str], Path, str, set | None]]) -> dict:
        """Like interleaved(), across projects: each command once per round, each on a
        fresh copy of its project's deployed database (checked afterwards when an expected
        set of applied migrations is given). Returns {name: median}."""
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(self.options.repeat):
            for name, (command, project, template, expected) in runs.items():
                slow = "MigrationExecutor" in name  # minutes per run on the "user" variant
                if slow and len(samples[name]) >= self.options.executor_repeat:
                    continue
                db = self.fresh(template)
                samples[name].append(timed(command, project, self.pg.url_of(db)))
                print(f"    {name}: {samples[name][-1]:.2f}s", flush=True)
                if expected is not None and self.pg.applied(db) != expected:
                    raise SystemExit(f"{name}: the applied migrations are not the expected ones")
                self.pg.drop(db)
        return {
            name: self.record("", name, values) if values else float("nan")
            for name, values in samples.items()
        }

    def _project(self, variant: str, apps: int, data: bool) -> tuple[synth.Spec, Path, str]:
        spec = synth.Spec(
            apps=apps,
            migrations=self.options.migrations,
            rollback_apps=self.options.rollback_apps,
            user_fks=True,
            data_steps=data,
        )
        project, template = self.deploy(variant, spec)
        return spec, project, template

    def data(self) -> None:
        """The "user" variant with a RunPython step (reverse code asking apps.get_model for
        its own model) in each of the rolled-back migrations: our rollback next to one plain
        MigrationExecutor plan, and next to the same rollback without the data steps."""
        n = self.options.rollback_apps
        spec, data_project, data_db = self._project("userdata", self.options.apps, True)
        _, plain_project, plain_db = self._project("user", self.options.apps, False)
        targets = [[spec.app(i), synth.previous_migration(spec, spec.app(i))] for i in range(n)]
        base_data = self._applied_at(data_project, data_db, "base", spec)
        base_plain = self._applied_at(plain_project, plain_db, "base", spec)
        print(f"[data] roll back the last migration of {n} apps, each with a data step")
        medians = self.rounds(
            {
                "data steps: rollback_migrations -t base": (
                    manage("rollback_migrations", "-t", "base"),
                    data_project,
                    data_db,
                    base_data,
                ),
                "data steps: one MigrationExecutor plan": (
                    [sys.executable, "-c", EXECUTOR, json.dumps(targets)],
                    data_project,
                    data_db,
                    base_data,
                ),
                "no data steps: rollback_migrations -t base": (
                    manage("rollback_migrations", "-t", "base"),
                    plain_project,
                    plain_db,
                    base_plain,
                ),
            }
        )
        ours, executor, without = medians.values()
        self.ratio(
            "data", "rollback with data steps / one executor plan (goal <= 0.1)", ours / executor
        )
        self.ratio("data", "rollback with data steps / without (goal <= 1.3)", ours / without)

    def floor(self) -> None:
        """The rollback next to what Django pays before it can do anything (`manage.py
        migrate` with nothing to do), on 2,000 and 6,000 migrations ("user" variant)."""
        runs: dict[str, tuple[list[str], Path, str, set | None]] = {}
        for apps in self.options.floor_apps:
            variant = "user" if apps == self.options.apps else f"user{apps}"
            spec, project, template = self._project(variant, apps, False)
            total = apps * spec.migrations
            expected = self._applied_at(project, template, "base", spec)
            runs[f"{total}: rollback_migrations -t base"] = (
                manage("rollback_migrations", "-t", "base"),
                project,
                template,
                expected,
            )
            runs[f"{total}: manage.py migrate (nothing to do)"] = (
                manage("migrate"),
                project,
                template,
                None,
            )
        print(f"[floor] {self.options.rollback_apps}-app rollback vs migrate with nothing to do")
        medians = self.rounds(runs)
        values = list(medians.values())
        for (name, _), ours, migrate in zip(
            list(runs.items())[::2], values[::2], values[1::2], strict=True
        ):
            total = name.split(":")[0]
            self.ratio(
                "floor",
                f"{total} migrations: rollback / migrate no-op (goal <= 1.3)",
                ours / migrate,
            )

    def ratio(self, variant: str, what: str, value: float) -> None:
        print(f"  ratio {what:<60} {value:6.3f}")
        self.rows.append((variant, f"ratio: {what}", value, value))

    def scale(self) -> None:
        """How our time grows with the number of migrations (projects of 10, 25 and 50 apps
        of `--migrations` each, last migration of 5 apps rolled back, next to one plain
        executor plan), and with the size of the rollback (the last k migrations of every
        app of the 50-app project: targets saved as states older than the current one)."""
        repeat = self.options.repeat
        for apps in (10, 25, 50):
            spec = synth.Spec(apps=apps, migrations=self.options.migrations, rollback_apps=5)
            variant = f"scale{apps}"
            project, template = self.deploy(variant, spec)
            targets = [[spec.app(i), synth.previous_migration(spec, spec.app(i))] for i in range(5)]
            expected = self._applied_at(project, template, "base", spec)
            total = apps * spec.migrations
            ours, executor = self.interleaved(
                "scale",
                project,
                template,
                {
                    f"{total} migrations: rollback_migrations, 5 steps": (
                        manage("rollback_migrations", "-t", "base"),
                        expected,
                    ),
                    f"{total} migrations: one MigrationExecutor plan, 5 steps": (
                        [sys.executable, "-c", EXECUTOR, json.dumps(targets)],
                        expected,
                    ),
                },
            )
            self.rows.append(
                (
                    "scale",
                    f"ratio: {total} migrations, ours / executor",
                    ours / executor,
                    ours / executor,
                )
            )
        # Rollback size, on the last project (50 apps): keep the first `keep` migrations.
        for back in (2, 5, 10, 20):
            keep = spec.migrations - back
            if keep < 1:
                continue
            samples = []
            steps = apps * back
            for _ in range(repeat):
                db = self.fresh(template)
                commit = self._save_target(db, keep)
                samples.append(
                    timed(manage("rollback_migrations", "-c", commit), project, self.pg.url_of(db))
                )
                self.pg.drop(db)
            self.record("scale", f"{total} migrations: rollback_migrations, {steps} steps", samples)

    def _save_target(self, db: str, keep: int) -> str:
        """A saved state with the first `keep` migrations of each synthetic app, older than
        the current one (ids decide which state is older)."""
        commit = f"{keep:040d}"
        self.pg.run(
            "UPDATE django_rollback_migrationstate SET id = id + 1000; "
            "INSERT INTO django_rollback_migrationstate "
            "(id, commit, tags, migrations, squashes, saved_at) "
            f"SELECT 1, '{commit}', '[]'::jsonb, jsonb_agg(jsonb_build_array(app, name) "
            "ORDER BY app, name), '{}'::jsonb, now() FROM django_migrations "
            f"WHERE app NOT LIKE 'app%' OR substr(name, 1, 4)::int <= {keep}",
            db,
        )
        return commit

    def _applied_at(self, project: Path, template: str, tag: str, spec: synth.Spec) -> set:
        full = self.pg.applied(template)
        counts = synth.releases(spec)[tag]
        return {
            (app, name) for app, name in full if app not in counts or int(name[:4]) <= counts[app]
        }


CHANGELIST = """
import json, statistics, sys, time
import django
django.setup()
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
states, migrations, repeat = (int(a) for a in sys.argv[1:4])
call_command("migrate", verbosity=0)
pairs = json.dumps([[f"app{i % 50:02d}", f"{i:04d}_migration_name"] for i in range(migrations)])
with connection.cursor() as cursor:
    cursor.execute(
        "INSERT INTO django_rollback_migrationstate (commit, tags, migrations, squashes, saved_at) "
        "SELECT md5(i::text) || substr(md5((-i)::text), 1, 8), "
        "CASE WHEN i %% 10 = 0 THEN jsonb_build_array('v' || i) ELSE '[]'::jsonb END, "
        "%s::jsonb, '{}'::jsonb, now() - (i || ' minutes')::interval "
        "FROM generate_series(1, %s) AS i",
        [pairs, states],
    )
admin = User.objects.create_superuser("bench", "bench@example.com", "bench")
client = Client()
client.force_login(admin)
url = "/admin/django_rollback/migrationstate/"
client.get(url)  # warm up: templates, permissions cache
samples, queries = [], []
for _ in range(repeat):
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - started)
    assert response.status_code == 200, response.status_code
    queries.append(len(captured.captured_queries))
print(json.dumps({"seconds": samples, "queries": queries, "bytes": len(response.content)}))
"""


def run_changelist(options: argparse.Namespace, pg: Postgres, bench: Bench) -> None:
    db = pg.create("changelist")
    env = {
        **os.environ,
        "DATABASE_URL": pg.url_of(db),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(REPO),
    }
    args = [str(options.states), str(options.state_migrations), str(max(options.repeat, 3))]
    result = subprocess.run(
        [sys.executable, "-c", CHANGELIST, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"changelist failed:\n{result.stderr[-3000:]}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"[changelist] {options.states} saved states of {options.state_migrations} migrations")
    bench.record("admin", f"changelist, {options.states} states", data["seconds"])
    queries = max(data["queries"])
    print(f"  queries per page: {queries}; page size {data['bytes']} bytes")
    bench.rows.append(("admin", "changelist queries", queries, min(data["queries"])))
    pg.drop(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--migrations", type=int, default=40, help="per app")
    parser.add_argument("--rollback-apps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--variants", default="plain,user", help="plain, user or both")
    parser.add_argument(
        "--only",
        default="rollback,onestep,save,dryrun,changelist,scale",
        help=f"any of {', '.join(PARTS)}",
    )
    parser.add_argument("--states", type=int, default=10_000, help="saved states (changelist)")
    parser.add_argument(
        "--state-migrations",
        type=int,
        default=2_000,
        help="migrations in each saved state (changelist)",
    )
    parser.add_argument(
        "--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--workdir", help="where to write the projects (default: a temp dir)")
    parser.add_argument(
        "--floor-apps",
        default="50,150",
        help="project sizes (apps of --migrations each) for the floor part",
    )
    parser.add_argument(
        "--executor-repeat",
        type=int,
        default=3,
        help="runs of Django's executor in the data part (each takes minutes; 0: none)",
    )
    parser.add_argument(
        "--real-deploy",
        action="store_true",
        help="deploy with Django's forward migrate instead of the cheap deploy (slow)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the generated projects (in --workdir) and their deployed databases, and "
        "reuse them on the next run with the same sizes",
    )
    options = parser.parse_args()
    options.only = [p.strip() for p in options.only.split(",") if p.strip()]
    options.floor_apps = [int(a) for a in options.floor_apps.split(",")]
    unknown = set(options.only) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    pg = Postgres(options.pg_url)
    if options.reuse and not options.workdir:
        options.workdir = str(Path(tempfile.gettempdir()) / "drbench")
    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="drbench-"))
    bench = Bench(options, pg, workdir)
    started = time.perf_counter()
    try:
        if "scale" in options.only:
            bench.scale()
        if "data" in options.only:
            bench.data()
        if "floor" in options.only:
            bench.floor()
        if set(options.only) - {"changelist", "scale", "data", "floor"}:
            for variant in options.variants.split(","):
                bench.run_variant(variant.strip())
        if "changelist" in options.only:
            run_changelist(options, pg, bench)
    finally:
        pg.drop_all()
        if not options.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
    print("\n| variant | measurement | median | min |\n|---|---|---:|---:|")
    for variant, what, median, low in bench.rows:
        if what.startswith("ratio"):
            print(f"| {variant} | **{what}** | **{median:.2f}** | |")
        elif "queries" in what:
            print(f"| {variant} | {what} | {median:.0f} | {low:.0f} |")
        else:
            print(f"| {variant} | {what} | {median:.2f}s | {low:.2f}s |")
    if options.json:
        Path(options.json).write_text(json.dumps(bench.rows, indent=1))


if __name__ == "__main__":
    main()
