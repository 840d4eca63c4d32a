"""A django-tenants fleet: our rollback of every tenant schema against what a django-tenants
user does today.

    .venv/bin/python benchmarks/tenants.py                   # 200 tenants, 2 processes, 3 rounds
    .venv/bin/python benchmarks/tenants.py --tenants 1000 --repeat 1
    make bench-tenants TENANTS=1000

The project: a shared app (the tenant and domain models) and two tenant apps, `notes` and
`tasks`. Release v1 creates them; release v2 adds three migrations over the two tenant apps
(notes.0002 adds a column and a table, notes.0003 adds a column, tasks.0002 adds a foreign key
to notes). Every tenant is a real django-tenants tenant (a row in the tenant table, a domain, a
schema with its own django_migrations and django_rollback tables): one template tenant is
created and migrated by django-tenants at v1 and at v2, both states saved by
`save_migrations_state`, and the others are cloned from it with SQL (`pg_dump -n` of its schema,
renamed), which takes seconds instead of the minutes `migrate_schemas` needs per hundred.

Each round, on fresh copies (CREATE DATABASE ... TEMPLATE) of the deployed v2 database, from
the v2 checkout, interleaved so that machine load hits both alike:

- ours: `manage.py rollback_migrations -t v1 --no-input --jobs N`;
- django-tenants: `manage.py migrate_schemas tasks 0001_initial --executor=multiprocessing`
  then `manage.py migrate_schemas notes 0001_initial --executor=multiprocessing` (app by app,
  dependents first), with TENANT_MULTIPROCESSING_MAX_PROCESSES = N.

Both are checked afterwards (no tenant keeps a v2 table or migration row). Peak RSS: every
process of the command's tree is sampled in /proc (VmHWM, the kernel's high-water mark of the
resident set) while it runs; "worker" is the largest of the processes the command forked.
Needs PostgreSQL (--pg-url; default postgres://postgres@127.0.0.1:5432) and pg_dump/psql.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from run import Postgres  # the benchmarks' PostgreSQL helper: create, clone and drop databases

TEMPLATE_SCHEMA = "tenanttemplate"
MANAGE = """\
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""
SETTINGS = """\
import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench"
USE_TZ = True
DATABASES = {"default": {**environ.Env().db("DATABASE_URL"),
                         "ENGINE": "django_tenants.postgresql_backend"}}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
SHARED_APPS = ["django_tenants", "customers", "django.contrib.contenttypes",
               "django.contrib.auth", "django_rollback"]
TENANT_APPS = ["django.contrib.contenttypes", "django_rollback", "notes", "tasks"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
TENANT_MULTIPROCESSING_MAX_PROCESSES = int(os.environ.get("BENCH_JOBS", "2"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_ROLLBACK = {"REPO_PATH": BASE_DIR}
"""
HEAD = "from django.db import migrations, models\nimport django.db.models.deletion\n\n\n"
HEAD += "class Migration(migrations.Migration):\n"
ID = '("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False))'


def migration(dependencies: list[tuple[str, str]], operations: str) -> str:
    return HEAD + f"    dependencies = {dependencies!r}\n    operations = [\n{operations}    ]\n"


CUSTOMERS = """\
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)


class Domain(DomainMixin):
    pass
"""
V1 = {
    "manage.py": MANAGE,
    "fleet/__init__.py": "",
    "fleet/settings.py": SETTINGS,
    **{
        f"{app}/{path}": ""
        for app in ("customers", "notes", "tasks")
        for path in ("__init__.py", "migrations/__init__.py")
    },
    "customers/models.py": CUSTOMERS,
    "customers/migrations/0001_initial.py": migration(
        [],
        f"""\
        migrations.CreateModel(name="Client", fields=[{ID},
            ("schema_name", models.CharField(db_index=True, max_length=63, unique=True)),
            ("name", models.CharField(max_length=100))], options={{"abstract": False}}),
        migrations.CreateModel(name="Domain", fields=[{ID},
            ("domain", models.CharField(db_index=True, max_length=253, unique=True)),
            ("is_primary", models.BooleanField(db_index=True, default=True)),
            ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                related_name="domains", to="customers.client"))], options={{"abstract": False}}),
""",
    ),
    "notes/models.py": "from django.db import models\n\n\nclass Note(models.Model):\n"
    "    title = models.CharField(max_length=100)\n",
    "notes/migrations/0001_initial.py": migration(
        [],
        f'        migrations.CreateModel(name="Note", fields=[{ID}, '
        '("title", models.CharField(max_length=100))]),\n',
    ),
    "tasks/models.py": "from django.db import models\n\n\nclass Task(models.Model):\n"
    "    title = models.CharField(max_length=100)\n",
    "tasks/migrations/0001_initial.py": migration(
        [],
        f'        migrations.CreateModel(name="Task", fields=[{ID}, '
        '("title", models.CharField(max_length=100))]),\n',
    ),
}
V2 = {
    "notes/models.py": "from django.db import models\n\n\nclass Note(models.Model):\n"
    "    title = models.CharField(max_length=100)\n"
    '    body = models.TextField(default="")\n'
    "    archived = models.BooleanField(default=False)\n\n\n"
    "class Label(models.Model):\n    name = models.CharField(max_length=30)\n",
    "notes/migrations/0002_body_label.py": migration(
        [("notes", "0001_initial")],
        '        migrations.AddField(model_name="note", name="body", '
        'field=models.TextField(default="")),\n'
        f'        migrations.CreateModel(name="Label", fields=[{ID}, '
        '("name", models.CharField(max_length=30))]),\n',
    ),
    "notes/migrations/0003_note_archived.py": migration(
        [("notes", "0002_body_label")],
        '        migrations.AddField(model_name="note", name="archived", '
        "field=models.BooleanField(default=False)),\n",
    ),
    "tasks/models.py": "from django.db import models\n\n\nclass Task(models.Model):\n"
    "    title = models.CharField(max_length=100)\n"
    '    note = models.ForeignKey("notes.Note", null=True, on_delete=models.SET_NULL)\n',
    "tasks/migrations/0002_task_note.py": migration(
        [("tasks", "0001_initial"), ("notes", "0002_body_label")],
        '        migrations.AddField(model_name="task", name="note", field=models.ForeignKey('
        'null=True, on_delete=django.db.models.deletion.SET_NULL, to="notes.note")),\n',
    ),
}
ROWS = {  # a few rows per tenant, written at v2 in the template (so every clone has them)
    "notes_note": "INSERT INTO {s}.notes_note (title, body, archived) "
    "SELECT 'note ' || g, 'body ' || g, g % 2 = 0 FROM generate_series(1, 20) g",
    "notes_label": "INSERT INTO {s}.notes_label (name) VALUES ('red'), ('blue')",
    "tasks_task": "INSERT INTO {s}.tasks_task (title, note_id) "
    "SELECT 'task ' || id, id FROM {s}.notes_note",
}


def git(path: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)


def env_for(url: str, jobs: int) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": url, "BENCH_JOBS": str(jobs)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def manage(root: Path, url: str, *args: str, jobs: int = 2) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=env_for(url, jobs),
    )
    if result.returncode:
        raise SystemExit(f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


# --- the deployed fleet ------------------------------------------------------------------------


def build(root: Path, server: Postgres, tenants: int) -> str:
    """The project at v2 with `tenants` tenants; returns the template database's name."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "bench@example.com")
    git(root, "config", "user.name", "bench")
    name = server.create("tenants")
    url = server.url_of(name)
    for tag, release in (("v1", V1), ("v2", V2)):
        for relative, content in release.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(content)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", tag)
        git(root, "tag", tag)
        manage(root, url, "migrate_schemas", "--noinput")
        if tag == "v1":  # django-tenants creates and migrates the template tenant's schema
            manage(
                root,
                url,
                "shell",
                "-c",
                "from customers.models import Client, Domain\n"
                f"c = Client(schema_name={TEMPLATE_SCHEMA!r}, name='template'); c.save()\n"
                f"Domain(domain='{TEMPLATE_SCHEMA}.localhost', tenant=c).save()\n",
            )
        else:
            for sql in ROWS.values():
                server.run(sql.format(s=TEMPLATE_SCHEMA), name)
        manage(root, url, "save_migrations_state")
    clone(server, name, tenants)
    server.run("VACUUM ANALYZE", name)
    return name


def clone(server: Postgres, name: str, tenants: int) -> None:
    """`tenants` copies of the template tenant: its schema dumped once and renamed, a tenant
    row and a domain each; then the template tenant itself is dropped."""
    args = server.args
    dump = subprocess.run(
        [
            "pg_dump",
            "-h",
            args["host"],
            "-p",
            str(args["port"]),
            "-U",
            args["user"],
            "-n",
            TEMPLATE_SCHEMA,
            "--no-owner",
            name,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # pg_dump empties search_path for its session; the clones need nothing else from it.
    script = [dump.replace(TEMPLATE_SCHEMA, f"t{number:05d}") for number in range(1, tenants + 1)]
    script.append(
        "INSERT INTO public.customers_client (schema_name, name) "
        f"SELECT 't' || lpad(g::text, 5, '0'), 'Tenant ' || g FROM generate_series(1, {tenants}) g;"
        "\nINSERT INTO public.customers_domain (domain, is_primary, tenant_id) "
        "SELECT schema_name || '.localhost', true, id FROM public.customers_client "
        f"WHERE schema_name <> '{TEMPLATE_SCHEMA}';"
        f"\nDELETE FROM public.customers_domain WHERE domain = '{TEMPLATE_SCHEMA}.localhost';"
        f"\nDELETE FROM public.customers_client WHERE schema_name = '{TEMPLATE_SCHEMA}';"
        f"\nDROP SCHEMA {TEMPLATE_SCHEMA} CASCADE;\n"
    )
    subprocess.run(
        [
            "psql",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            args["host"],
            "-p",
            str(args["port"]),
            "-U",
            args["user"],
            "-d",
            name,
        ],
        input="\n".join(script),
        check=True,
        capture_output=True,
        text=True,
    )


def check_rolled_back(server: Postgres, name: str, tenants: int) -> None:
    """No tenant keeps a v2 table or a v2 migration row; every tenant is still there."""
    left = server.run(
        "SELECT count(*) FROM pg_tables WHERE tablename = 'notes_label' AND schemaname <> 'public'",
        name,
    )[0][0]
    schemas = server.run(
        "SELECT schema_name FROM public.customers_client ORDER BY schema_name", name
    )
    rows = 0
    for (schema,) in schemas:
        rows += server.run(
            f"SELECT count(*) FROM {schema}.django_migrations WHERE (app, name) IN "
            "(('notes', '0002_body_label'), ('notes', '0003_note_archived'), "
            "('tasks', '0002_task_note'))",
            name,
        )[0][0]
    if left or rows or len(schemas) != tenants:
        raise SystemExit(
            f"not rolled back: {left} schemas keep notes_label, {rows} v2 migration rows, "
            f"{len(schemas)} tenants of {tenants}"
        )


# --- timing and memory -------------------------------------------------------------------------


@dataclass
class Measured:
    seconds: float
    root_kb: int  # peak RSS of the command's own process
    worker_kb: int  # peak RSS of the largest process it forked
    workers: int  # how many processes it forked


@dataclass
class Sampler:
    """Polls /proc for the process tree under `root` and keeps each process's VmHWM."""

    root: int
    peaks: dict[int, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def children(self) -> dict[int, int]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        return parents

    def tree(self) -> list[int]:
        parents, found = self.children(), {self.root}
        grew = True
        while grew:
            grew = False
            for pid, parent in parents.items():
                if parent in found and pid not in found:
                    found.add(pid)
                    grew = True
        return sorted(found)

    def sample(self) -> None:
        for pid in self.tree():
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            kb = int(line.split()[1])
                            self.peaks[pid] = max(self.peaks.get(pid, 0), kb)
            except OSError:
                continue

    def loop(self) -> None:
        while not self.stop.wait(0.05):
            self.sample()


def measure(commands: list[list[str]], root: Path, url: str, jobs: int) -> Measured:
    """Run the commands one after the other; their wall time together and the peak RSS."""
    root_kb = worker_kb = workers = 0
    started = time.perf_counter()
    for command in commands:
        process = subprocess.Popen(
            [sys.executable, "manage.py", *command],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for(url, jobs),
        )
        sampler = Sampler(process.pid)
        thread = threading.Thread(target=sampler.loop, daemon=True)
        thread.start()
        out, err = process.communicate()
        sampler.stop.set()
        thread.join()
        if process.returncode:
            raise SystemExit(f"{command} failed:\n{out[-3000:]}\n{err[-3000:]}")
        forked = {pid: kb for pid, kb in sampler.peaks.items() if pid != process.pid}
        root_kb = max(root_kb, sampler.peaks.get(process.pid, 0))
        worker_kb = max([worker_kb, *forked.values()])
        workers = max(workers, len(forked))
    return Measured(time.perf_counter() - started, root_kb, worker_kb, workers)


def kept_fleet(server: Postgres, fleet: str | None, tenants: int, tmp: Path) -> tuple[Path, str]:
    """The project and its deployed database: built now, or (--fleet DIR) the ones kept there
    by an earlier run with the same number of tenants."""
    marker = Path(fleet) / f"database-{tenants}" if fleet else None
    root = (Path(fleet) / f"project-{tenants}") if fleet else tmp / "project"
    if marker is not None and marker.exists() and server.exists(marker.read_text().strip()):
        print(f"reusing the fleet kept in {root}", flush=True)
        return root, marker.read_text().strip()
    if root.exists():
        shutil.rmtree(root)
    started = time.perf_counter()
    template = build(root, server, tenants)
    print(f"built the fleet in {time.perf_counter() - started:.1f} s", flush=True)
    if marker is not None:
        server.created.remove(template)  # kept: drop it by hand when done
        marker.write_text(template)
    return root, template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2, help="processes for both sides")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--only-ours", action="store_true", help="skip migrate_schemas")
    parser.add_argument(
        "--fleet",
        metavar="DIR",
        help="keep the built fleet (project in DIR, its database kept) and reuse it next time",
    )
    options = parser.parse_args()
    server = Postgres(options.pg_url)
    jobs = options.jobs
    ours = [["rollback_migrations", "-t", "v1", "--no-input", "--jobs", str(jobs)]]
    theirs = [
        ["migrate_schemas", app, "0001_initial", "--executor=multiprocessing", "--noinput"]
        for app in ("tasks", "notes")
    ]
    print(
        f"PostgreSQL {server.run('SHOW server_version')[0][0]}, {options.tenants:,} tenants, "
        f"{jobs} processes, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results: dict[str, list[Measured]] = {"ours": [], "theirs": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root, template = kept_fleet(server, options.fleet, options.tenants, Path(tmp))
            sides = [("ours", ours)] + ([] if options.only_ours else [("theirs", theirs)])
            for round_ in range(options.repeat):
                for side, commands in sides if round_ % 2 == 0 else sides[::-1]:
                    copy = server.create("run", template)
                    # The copy's pages written out before the clock starts, for both sides:
                    # else a checkpoint of the copy lands in whichever command runs next.
                    server.run("CHECKPOINT")
                    measured = measure(commands, root, server.url_of(copy), jobs)
                    check_rolled_back(server, copy, options.tenants)
                    server.drop(copy)
                    results[side].append(measured)
                    print(
                        f"round {round_ + 1} {side:6}: {measured.seconds:7.2f} s, peak RSS "
                        f"coordinator {measured.root_kb / 1024:.0f} MB, worker "
                        f"{measured.worker_kb / 1024:.0f} MB ({measured.workers} forked), "
                        f"load average {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
    finally:
        server.drop_all()
    summary = {
        side: statistics.median(m.seconds for m in runs) for side, runs in results.items() if runs
    }
    for side, runs in results.items():
        if runs:
            print(
                f"{side}: median {summary[side]:.2f} s (runs "
                + ", ".join(f"{m.seconds:.2f}" for m in runs)
                + f"); peak RSS per worker {max(m.worker_kb for m in runs) / 1024:.0f} MB, "
                f"coordinator {max(m.root_kb for m in runs) / 1024:.0f} MB"
            )
    if "theirs" in summary:
        print(
            f"ratio ours / migrate_schemas: {summary['ours'] / summary['theirs']:.3f} "
            "(goal <= 0.25)"
        )


if __name__ == "__main__":
    main()
