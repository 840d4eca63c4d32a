# The two commands a newcomer needs; both set everything up from a fresh checkout.
.PHONY: demo test test-dj42 lint

demo:
	bash scripts/demo.sh

# SQLite, PostgreSQL and MariaDB with the newest Django (5.2).
test:
	bash scripts/test.sh

# The same on Django 4.2 LTS (its own virtualenv, .venv-dj42); CI runs both.
test-dj42:
	VENV=.venv-dj42 bash scripts/test.sh

lint:
	bash scripts/bootstrap.sh && .venv/bin/ruff check . && .venv/bin/ruff format --check . \
		&& .venv/bin/mypy django_rollback
