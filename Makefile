# Every target uses the project's virtualenv; `make venv` (or `.ci/run`) creates it.
VENV ?= .venv
PY := $(VENV)/bin/python
PROTO_SOURCES := $(shell find protos -name '*.proto' | sort)

.PHONY: venv test lint typecheck protos bench demo clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# The README's test command. Needs redis-server/redis-cli on PATH (see README).
test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check services tests bench monitoring
	$(VENV)/bin/ruff format --check services tests bench monitoring
	$(VENV)/bin/mypy

# Regenerates the committed protobuf code from protos/ (checked by tests/unit/test_protos_fresh.py).
protos: venv
	$(PY) -m grpc_tools.protoc -I protos --python_out=services --pyi_out=services $(PROTO_SOURCES)

bench: venv
	$(PY) bench/run.py

# Until the local stack lands: start Redis, load examples/overrides.yaml, push sample traffic, print it.
demo: venv
	$(VENV)/bin/mimir-edge demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
