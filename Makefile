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

test: setup lint
	$(PY) -m pytest -q tests
