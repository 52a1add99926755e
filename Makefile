# spiketune: every target builds .venv from requirements.lock when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# test processes: files are spread over them whole (--dist loadfile keeps module fixtures in one)
TEST_WORKERS ?= 2

.PHONY: run test test-fast bench ui lock clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "spiketune needs $(PYTHON) on PATH (set PYTHON=...)" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# Exact versions with --no-deps: pip never runs its resolver, which backtracks for >10 min on this stack.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/spiketune $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

ui: $(STAMP)
	$(BIN)/spiketune-ui

# Regenerate the lock: resolve the top-level pins once, then freeze every version.
lock:
	rm -rf /tmp/spiketune-lock && $(PYTHON) -m venv /tmp/spiketune-lock
	/tmp/spiketune-lock/bin/pip install -r requirements.in
	/tmp/spiketune-lock/bin/pip freeze --all --exclude-editable | grep -v '^pip==' > requirements.lock

clean:
	rm -rf $(VENV)
