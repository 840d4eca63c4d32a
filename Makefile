# The two commands a newcomer needs; both set everything up from a fresh checkout.
.PHONY: demo test test-dj61 lint docs soak

demo:
	bash scripts/demo.sh

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
