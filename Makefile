# The two set-up commands (README): `make demo` and `make test` each create the environment first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# OpenSSL 1.1 for the Redis Stack test server (tests/redis_stack.py): unpacked, not installed.
REDIS_STACK_LIBS := $(VENV)/redis-stack-libs/.unpacked

.PHONY: demo test check lint format bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(REDIS_STACK_LIBS): $(STAMP) tests/redis_stack.py
	$(BIN)/python -m tests.redis_stack install
	mkdir -p $(dir $(REDIS_STACK_LIBS)) && touch $(REDIS_STACK_LIBS)

demo: $(STAMP)
	$(BIN)/thrifty demo

test: $(STAMP) $(REDIS_STACK_LIBS)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/choices.py
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
