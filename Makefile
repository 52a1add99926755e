# spiketune: every target builds .venv from the lock of its Python when it is missing.
#   make test                 python3, lock requirements-<3.x>.lock
#   make test PYTHON=python3.13
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# test processes: files are spread over them whole (--dist loadfile keeps module fixtures in one)
TEST_WORKERS ?= 2

# The interpreter's minor version picks the lock; anything outside 3.11-3.13 is refused in one line.
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
LOCK := requirements-$(or $(PYVER),unknown).lock
STAMP := $(VENV)/.installed-$(or $(PYVER),unknown)

.PHONY: run test test-fast test-alone test-random test-nengo-dl lint bench ui server server-stop server-status slurm \
        slurm-stop lock clean

# Only a supported Python has a lock; any other gets this recipe instead of a venv.
requirements-%.lock:
	@test "$*" != unknown || { echo "spiketune: $(PYTHON) does not run; set PYTHON=python3.11, python3.12 or python3.13" >&2; exit 2; }
	@echo "spiketune: Python $(PYVER) ($(PYTHON)) is not supported; use Python 3.11, 3.12 or 3.13 (make PYTHON=python3.12 ...)" >&2; exit 2

# A venv not built from this Python's lock (another Python, the old TF 2.12 lock) is replaced,
# never mixed; one built from it is updated in place when the lock changes.
# Exact versions with --no-deps: pip never runs its resolver, which backtracks for many minutes on this stack. setuptools (<81, from the lock)
# goes in first, because the sdists in the lock (nengo-dl, antlr4) build against the venv's own
# setuptools (--no-build-isolation): nengo-dl's build pins setuptools<64, which fails on 3.12.
$(STAMP): $(LOCK) pyproject.toml
	@if [ -e $(VENV) ] && [ ! -f $(STAMP) ]; then \
	    echo "replacing $(VENV): it was not built from $(LOCK) (another Python, or the old lock)"; \
	    rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
	    $$(grep -E '^(setuptools|wheel)==' $(LOCK))
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	# every interpreter of the venv loads framework.compat at start-up, so a plain `import nengo_dl`
	# works in any process (users' scripts, nengo-dl's own subprocess tests), not only after
	# `import framework`; after __editable__*.pth (alphabetical), which puts framework on the path
	echo "import importlib.util as u; u.find_spec('framework.compat') and __import__('framework.compat')" \
	    > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/spiketune-compat.pth"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/spiketune $(ARGS)

# Tests run in random order (pytest-randomly: files and the tests in each, and random/numpy
# reseeded before each test), the seed said first: `make test SEED=<n>` replays an order.
ifndef SEED
SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif
ORDER = -p randomly --randomly-seed=$(SEED)

test: $(STAMP)
	@echo "make test: random order, SEED=$(SEED) (replay: make test SEED=$(SEED))"
	$(BIN)/python -m pytest -q -m "" -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(ORDER) $(PYTEST_ARGS)

test-fast: $(STAMP)
	@echo "make test-fast: random order, SEED=$(SEED) (replay: make test-fast SEED=$(SEED))"
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(ORDER) $(PYTEST_ARGS)

# The flaky-test check. test-alone: each tests/test_*.py in a pytest process of its own, in random
# order ("every test file runnable alone"; PYTEST_ARGS='-m ""' for the slow tests too).
# test-random: the whole suite RUNS times, each in a new random order (the seeds are printed).
RUNS ?= 3
test-alone: $(STAMP)
	RANDOMLY_SEED=$(SEED) .ci/each-file-alone -j $(TEST_WORKERS) -p $(BIN)/python -- $(PYTEST_ARGS)

test-random: $(STAMP)
	@for i in $$(seq $(RUNS)); do \
	    seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	    echo "test-random: run $$i of $(RUNS), SEED=$$seed"; \
	    $(MAKE) --no-print-directory test SEED=$$seed || { echo "test-random: failed with SEED=$$seed"; exit 1; }; \
	done

# nengo-dl's own tests, shipped inside its sdist, against the installed package with our layer.
test-nengo-dl: $(STAMP)
	$(BIN)/python -m framework.compat.upstream_tests $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check framework plugins tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

ui: $(STAMP)
	$(BIN)/spiketune-ui

# A shared MLflow tracking server on PostgreSQL (framework/server.py): data in outputs/server/ or
# DATA=<folder>, on http://127.0.0.1:5000 unless ARGS="--port 5001 ..." says otherwise.
#   make server   make server-status   make server-stop
SERVER_DATA = $(if $(DATA),--data $(DATA))
server: $(STAMP)
	$(BIN)/spiketune-server start $(SERVER_DATA) $(ARGS)

server-stop: $(STAMP)
	$(BIN)/spiketune-server stop $(SERVER_DATA)

server-status: $(STAMP)
	$(BIN)/spiketune-server status $(SERVER_DATA)

# A one-node SLURM cluster on this machine, as root (framework/slurm_cluster.py): state in
# outputs/slurm/; it prints the `export SLURM_CONF=...` that sbatch and hydra/launcher=slurm_local need.
slurm: $(STAMP)
	$(BIN)/python -m framework.app.slurm_cluster start $(ARGS)

slurm-stop: $(STAMP)
	$(BIN)/python -m framework.app.slurm_cluster stop

# Regenerate the lock of $(PYTHON): uv resolves in seconds where pip backtracks for many minutes.
# nengo-dl is left out of the resolution (its sdist cannot build in isolation) and pinned after.
lock:
	rm -rf /tmp/spiketune-lock && $(PYTHON) -m venv /tmp/spiketune-lock
	/tmp/spiketune-lock/bin/pip install --quiet uv
	/tmp/spiketune-lock/bin/uv pip compile requirements.in --python $(PYTHON) --no-header --no-annotate \
	    -o /tmp/spiketune-lock/lock.txt
	{ cat /tmp/spiketune-lock/lock.txt; echo "nengo-dl==3.6.0"; } | sort -f > $(LOCK)

clean:
	rm -rf $(VENV)
