# The two commands of the README: `make demo` and `make test`.
# Both create (or reuse) .venv and install what they need from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/rapport demo --clients clients.example.toml $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check streams tests bench
	$(BIN)/mypy streams

bench: $(STAMP)
	$(BIN)/rapport bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .rapport .pytest_cache
