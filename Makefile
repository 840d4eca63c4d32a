# The two commands a newcomer needs; both set everything up from a fresh checkout.
.PHONY: demo demo-tenants bench-tenants test test-dj61 lint docs soak

demo:
	bash scripts/demo.sh

# The same with a django-tenants project (four tenants, three releases) on PostgreSQL:
# DEMO_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/django_rollback_demo_tenants.
demo-tenants:
	DEMO_TENANTS=1 bash scripts/demo.sh

# Our fleet rollback against migrate_schemas app by app (benchmarks/README.md); TENANTS=1000 too.
TENANTS ?= 200
JOBS ?= 2
REPEAT ?= 3
bench-tenants:
	bash scripts/bootstrap.sh && .venv/bin/python benchmarks/tenants.py --tenants $(TENANTS) \
		--jobs $(JOBS) --repeat $(REPEAT)

# SQLite, PostgreSQL and MariaDB on Django 5.2 LTS.
test:
	bash scripts/test.sh

# The same on Django 6.1 (its own virtualenv, .venv-dj61, on Python 3.12+); CI runs both at once.
test-dj61:
	VENV=.venv-dj61 bash scripts/test.sh

lint:
	bash scripts/bootstrap.sh && .venv/bin/ruff check . && .venv/bin/ruff format --check . \
		&& .venv/bin/mypy django_rollback && .venv/bin/python scripts/check_shape.py

# The documentation site, warnings as errors (as CI builds it): open docs/_build/html/index.html.
docs:
	bash scripts/bootstrap.sh && .venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

# The life-cycle machine for thousands of random steps per backend (CI runs a few dozen);
# results and the seed to rerun them in test-artifacts/soak/ (docs/lifecycle.md).
soak:
	bash scripts/soak.sh
