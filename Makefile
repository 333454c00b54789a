# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Tests run on every core (pytest-xdist); `make test PYTEST_ARGS=` runs them in one process.
PYTEST_ARGS ?= -n auto

.PHONY: setup demo test test-slow lint bench clean

setup: $(STAMP)

# Reinstall only when the project's own install files change.
$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m monai_seq2seq.cli.demo --out outputs

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

LINT_PATHS := monai_seq2seq tests benchmarks experiments

# Gates: lint rules, the formatter and a complexity limit (C901 <= 12, pyproject.toml).
lint: $(STAMP)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)

bench: $(STAMP)
	$(PY) benchmarks/profile_networks.py
	$(PY) benchmarks/bench_decode.py
	$(PY) benchmarks/bench_train.py --config small --size 96 --batch-sizes 1 4 --iterations 5

clean:
	rm -rf $(VENV) outputs build *.egg-info .pytest_cache
