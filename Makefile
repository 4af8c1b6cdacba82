# The two commands: `make run` starts the platform, `make test` runs the checks and the suite.
# Both install what is missing first (Python packages into .venv, PostgreSQL and Redis with apt-get).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest install system-deps clean bench bench-realtime bench-campaign bench-faults

run: install
	$(PY) tools/run.py

test: install lint typecheck pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Benchmarks (bench/): measurements, not tests. Each starts its own PostgreSQL, Redis and processes and
# prints its figures; options go in BENCH_ARGS, e.g. `make bench-realtime BENCH_ARGS="--rates 200"`.
bench: bench-campaign bench-faults bench-realtime

bench-realtime: install
	$(PY) bench/realtime_listener.py $(BENCH_ARGS)

bench-campaign: install
	$(PY) bench/campaign.py $(BENCH_ARGS)

bench-faults: install
	$(PY) bench/faults.py $(BENCH_ARGS)

install: system-deps $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# PostgreSQL and Redis servers come from Debian's packages; initdb refuses root, so the tools run it
# as the `postgres` user the package creates.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then \
		echo "Installing PostgreSQL and Redis servers with apt-get..."; \
		if [ "$$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql redis-server >/dev/null; \
	fi

clean:
	rm -rf $(VENV) var
