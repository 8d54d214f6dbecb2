# Everything a developer or CI needs; `make demo` and `make test` set themselves up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-postgresql test-long lint typecheck pytest check-unit metrics-test \
	system-test format lock clean bench bench-smoke

$(STAMP): pyproject.toml requirements/runtime.lock requirements/dev.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/jtm demo

test: lint typecheck pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

# The tests marked postgresql (the store, daemon and CLI suites on PostgreSQL, several
# instances on one database) against a throwaway server: .ci/with-postgresql starts one (and
# installs Debian's postgresql package when missing and run as root). `make test` skips them.
test-postgresql: setup
	.ci/with-postgresql $(BIN)/pytest -m postgresql -q

# The tests that take minutes of real time (a notification receiver down for two minutes).
test-long: setup
	$(BIN)/pytest -m long

# The systemd unit, with systemd's own tools (skipped with a message where they are missing).
check-unit:
	systemd/check

# Prometheus's own tools on the metrics (the tests marked `prometheus`, about a minute):
# promtool on the alert rules and a live scrape, a real Prometheus scraping a real daemon.
# Installs Debian's prometheus (which carries promtool) and prometheus-alertmanager when
# missing (apt-get: CI runs as root).
PROMETHEUS_PACKAGES := prometheus prometheus-alertmanager

metrics-test: setup
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null \
	    || ! command -v prometheus-alertmanager >/dev/null; then \
	  echo "installing $(PROMETHEUS_PACKAGES) with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(PROMETHEUS_PACKAGES) >/dev/null; \
	fi
	$(BIN)/pytest -m prometheus

# The service as installed, under a real systemd: boots two Debian 12 machines under QEMU
# (software emulation) and runs tests/system/guest/ there; as root, 4.5 to 5 minutes (more
# the first time: the base image is debootstrapped once and cached). See tests/system/run.
system-test:
	tests/system/run

# The benchmark suite (a few minutes; see docs/benchmarks.md): results to bench/results.json
# and the table of docs/benchmarks.md. bench-smoke only checks that it runs (seconds).
# The PostgreSQL figures need a server: .ci/with-postgresql starts a throwaway one.
bench: setup
	.ci/with-postgresql $(BIN)/python -m bench

bench-smoke: setup
	$(BIN)/python -m bench --smoke

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve the locked versions from pyproject.toml in a scratch venv.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet '.[apprise,postgresql]' && .lock-venv/bin/pip uninstall --quiet -y jira-task-monitor
	.lock-venv/bin/pip freeze > requirements/runtime.lock.new
	.lock-venv/bin/pip install --quiet '.[dev]' && .lock-venv/bin/pip uninstall --quiet -y jira-task-monitor
	.lock-venv/bin/pip freeze > requirements/dev.lock.new
	rm -rf .lock-venv
	@echo "review requirements/*.new (keep the headers and the -r line), then move them in place"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache dist build
