# The two commands of the README: `make run` and `make test`. Both work on a
# fresh machine with only Python 3.11 and pip: they build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench browser prometheus-tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/mailpulse run --demo

# Console tests drive Debian's Chromium; install it where we may (root + apt).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; \
	fi

# promtool and a real Prometheus for tests/prometheus: Debian's prometheus, where we may.
prometheus-tools:
	@if ! command -v promtool >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's prometheus for the metrics tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >/dev/null; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(VENV)/.installed-test browser prometheus-tools lint
	$(BIN)/pytest

# Every benchmark in turn; stdout carries only their JSON lines (progress, and
# any set-up output of the venv, go to stderr).
bench:
	@$(MAKE) -s --no-print-directory $(VENV)/.installed-test >&2
	@$(BIN)/python -m bench.spine
	@$(BIN)/python -m bench.delivery
	@$(BIN)/python -m bench.windows
	@$(BIN)/python -m bench.metrics
	@$(BIN)/python -m bench.memory
	@$(BIN)/python -m bench.suppression
	@$(BIN)/python -m bench.ws_fanout
	@$(BIN)/python -m bench.tracking
	@$(BIN)/python -m bench.export
	@$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .mailpulse .pytest_cache .mypy_cache .ruff_cache
