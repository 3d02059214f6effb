# leadflow: `make demo` runs the whole flow on the embedded broker; `make test` runs every test.
# Each target creates or refreshes .venv first, so both work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

# Python caches compiled modules (and pytest its rewritten test modules) in __pycache__, ignored by git, even where
# the environment says not to (PYTHONDONTWRITEBYTECODE, set on some machines and CI's): else each worker and CLI
# process the tests start compiles leadflow anew (0.5 s of CPU each) and each test process rewrites every test file.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install system-deps demo test unit integration fuzz lint format bench schemas clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: install python3-venv (apt-get install -y python3-venv)"; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Debian's prometheus package: promtool checks and unit-tests deploy/prometheus/alerts.yml, and the prometheus
# server scrapes a real worker in tests/integration/test_prometheus.py. Installed when missing and apt-get can (root,
# as in CI); those tests fail, saying to run `make system-deps`, when it is not there. The package starts its own
# prometheus service on :9090 where systemd (or sysvinit) runs: stopped and disabled at once, the tests start their
# own server on a free port.
system-deps:
	@if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then \
	  echo "installing Debian's prometheus package (promtool and the server) for the alert and dashboard tests"; \
	  if { apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
	       || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; }; }; then \
	    if [ -d /run/systemd/system ]; then systemctl disable --now prometheus.service >/dev/null 2>&1 || true; \
	    elif [ -x /etc/init.d/prometheus ]; then /etc/init.d/prometheus stop >/dev/null 2>&1 || true; fi; \
	  else echo "could not install prometheus (needs root and Debian's apt): the promtool and prometheus tests will fail"; fi; \
	fi

demo: install
	$(VENV)/bin/leadflow demo

# Three test processes, each with its own embedded broker; a file's tests stay in one process (--dist loadfile) so
# module fixtures (one worker for a file's tests) are shared, and the longest files are handed out first
# (--no-loadscope-reorder keeps the order of tests/conftest.py's LONGEST_FIRST), so the processes end together.
# Integration tests mostly wait on worker start-ups, unit tests use the CPU: three processes keep two cores busy.
# On 2 shared cores: 1,645 tests in 477 s and 511 s with 3 processes, 618 s from a clean clone (no bytecode cached
# yet, other jobs using about half a core); 568 s with 3 and no longest-first order or garbage collector settings;
# 860 s with 2 before (when test_restarts.py was one file of 394 s). TEST_PROCESSES=0 runs them in this process.
# The 40 slowest tests are listed at the end, so that a test that grows is seen.
TEST_PROCESSES ?= 3
PYTEST := $(PY) -m pytest -q -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder --durations=40

test: install system-deps
	$(PYTEST)

unit: install
	$(PYTEST) tests/unit

integration: install system-deps
	$(PYTEST) -m integration

# The fuzz properties of tests/unit/test_fuzz.py at 12,000 examples each (LEADFLOW_FUZZ_EXAMPLES), 108,000 in all:
# every record a producer can write must end in a decision or a dead letter. 15 to 30 minutes on 2 cores.
# Then the columnar engine against the reference on 3,000 generated streams and rulesets (LEADFLOW_COLUMNAR_EXAMPLES;
# 150 in make test), and its msgspec decoder against pydantic on 12,000 mangled records, 2 to 15 minutes more
# (115 s on a quiet day, 2026-12-07; 208 s with the decoder's test, 2026-12-08, beside a valgrind run).
fuzz: install
	$(PY) -m pytest -q tests/unit/test_fuzz.py --hypothesis-profile=fuzz --durations=0
	LEADFLOW_COLUMNAR_EXAMPLES=$${LEADFLOW_COLUMNAR_EXAMPLES:-3000} $(PY) -m pytest -q tests/unit/test_columnar.py \
		tests/unit/test_columnar_decode.py --hypothesis-profile=fuzz --durations=0

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/leadflow schema --out schemas --check

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) bench/bench_core.py
	$(PY) bench/bench_routing.py
	$(PY) bench/bench_e2e.py

schemas: install
	$(VENV)/bin/leadflow schema --out schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache leadflow-data
