# The two commands of the README. Each sets up its own environment (.venv,
# created once and reused) before it runs.
PY := .venv/bin/python
# Idle OpenMP threads sleep instead of spinning: on a machine whose cores are
# shared, spinning threads slow every step down many times.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup demo test lint

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py

lint: setup
	$(PY) -m ruff check projects tools tests configs

# Two pytest workers (pytest-xdist): each test runs one torch thread, so the
# two cores of a small machine both work. HMSA_TEST_WORKERS changes it.
HMSA_TEST_WORKERS ?= 2

test: setup lint
	$(PY) -m pytest -q -n $(HMSA_TEST_WORKERS) tests
