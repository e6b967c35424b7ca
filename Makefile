# The two commands of the README. Each sets up its own environment (.venv,
# created once and reused) before it runs.
PY := .venv/bin/python

.PHONY: setup demo test lint

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py

lint: setup
	$(PY) -m ruff check projects tools tests configs

test: setup lint
	$(PY) -m pytest -q tests
