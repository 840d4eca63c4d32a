# The two commands a newcomer needs; both set everything up from a fresh checkout.
.PHONY: demo test lint

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

lint:
	bash scripts/bootstrap.sh && .venv/bin/ruff check . && .venv/bin/ruff format --check .
