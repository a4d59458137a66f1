# One entry point. `make demo` and `make test` are the README's two commands; each
# installs what it needs on first use (a virtualenv in .venv, `npm ci` into node_modules).
SHELL := /bin/bash
PY := .venv/bin/python
ROOT := $(CURDIR)
# solc-js stands in for native solc (tools/solc); ape keeps its caches inside the repo;
# anvil comes from node_modules.
export SOLCX_BINARY_PATH := $(ROOT)/tools/solc
export APE_DATA_FOLDER := $(ROOT)/.ape
export PATH := $(ROOT)/node_modules/.bin:$(ROOT)/.venv/bin:$(PATH)
PYTEST := $(PY) -m pytest -p no:ape_test
# The suites that start processes and chains (integration, hostile, e2e, faults: much of their
# time spent waiting for blocks and polls) run on parallel pytest-xdist workers. Whole files go
# to one worker (--dist loadfile): a module- or session-scoped chain or devnet stays with its
# worker, on its own free ports and temp folder. TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile

.PHONY: setup lock demo test test-unit test-contracts test-integration test-hostile test-e2e \
	test-faults bytecode lint slither abi bench clean

setup: .venv/.installed node_modules/.installed

# Dependencies come only from the hash-locked requirements/dev.lock (`make lock` remakes it);
# the project itself is installed with --no-deps (its build backend comes from [build-system]).
.venv/.installed: requirements/dev.lock pyproject.toml
	rm -rf .venv
	python3.11 -m venv .venv
	.venv/bin/pip install --quiet --require-hashes -r requirements/dev.lock
	.venv/bin/pip install --quiet --no-deps -e .
	touch $@

# Re-resolve pyproject's [dev] extra for CPython 3.11 on linux x86_64, with the sha256 of
# every file of every pinned release. uv runs from a throwaway venv (.lockvenv), not .venv.
UV_VERSION := 0.13.8
lock:
	test -x .lockvenv/bin/uv || (python3.11 -m venv .lockvenv && .lockvenv/bin/pip install --quiet uv==$(UV_VERSION))
	.lockvenv/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --index-url https://pypi.org/simple --emit-index-url \
		--custom-compile-command 'make lock' --quiet -o requirements/dev.lock

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

demo: setup
	.venv/bin/shardkey demo

# The process suites run as separate sessions, not one: the integration session's anvil
# (tests/support/devchain.py) grows with every deployment on it (several GB after 20 minutes).
test: setup lint test-unit test-contracts slither test-integration test-hostile test-e2e test-faults

lint: setup
	.venv/bin/ruff check shardkey kos holder_agent repairer bench scripts tools tests
	.venv/bin/mypy shardkey kos holder_agent repairer bench scripts tools

test-unit: setup
	$(PYTEST) tests/unit -q

test-contracts: setup
	.venv/bin/ape test tests/contracts -q

slither: setup
	$(PY) tools/run_slither.py

# Every CLI run and service these suites start imports the project afresh; compiled bytecode
# saves each one the compile (~0.25 s CPU), also where PYTHONDONTWRITEBYTECODE is set.
bytecode: setup
	$(PY) -m compileall -q shardkey kos holder_agent repairer > /dev/null

test-integration: setup bytecode
	$(PYTEST) $(XDIST) tests/integration -q

test-hostile: setup bytecode
	$(PYTEST) $(XDIST) tests/hostile -q

test-e2e: setup bytecode
	$(PYTEST) $(XDIST) tests/e2e -q

test-faults: setup bytecode
	$(PYTEST) $(XDIST) tests/faults -q

abi: setup
	$(PY) tools/export_abi.py

# The benchmark suite (docs/PERFORMANCE.md); e.g. `make bench BENCH_ARGS="--no-tahoe --no-far"`.
BENCH_ARGS ?=
bench: setup
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf .build .ape contracts/.cache crytic-export .pytest_cache
