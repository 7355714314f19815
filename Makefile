# Entry points; the work is in scripts/. `make test ARGS="-k broker"` passes ARGS to pytest.
VENV := .venv
ARGS ?=

.PHONY: setup up test lint bench

setup:
	scripts/setup.sh

up: setup
	$(VENV)/bin/runledger up

test: setup
	scripts/test.sh $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: setup
	@set -e; for script in bench/*.py; do \
		[ -e "$$script" ] || continue; \
		echo "== $$script"; \
		$(VENV)/bin/python "$$script"; \
	done
