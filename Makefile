# The two README commands are `make run` and `make test`; `.ci/run` runs `make lint` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Test files run side by side in this many pytest-xdist workers (each test has its own cloned
# database and topic prefix): the CPU count, at most four, so one broker and one PostgreSQL keep up.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
ARGS ?=

.PHONY: install run test lint lint-chart format services-up services-down clean image-test chaos chaos-short bench-smoke

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

install: $(UV)
	$(UV) sync --frozen --quiet

# `make run ARGS="--port 8091 --data-dir /tmp/agent-eval"`: ARGS go to `agent-eval dev`.
run: install
	$(BIN)/agent-eval dev $(ARGS)

# The services stay up, so the next `make test` starts at once; the last line says how to stop them.
test: install
	scripts/services up
	source .services/env && $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS); status=$$?; \
	echo "make test: PostgreSQL and Kafka keep running for the next run; stop them with scripts/services down"; \
	exit $$status

lint: install
	$(BIN)/ruff format --check service consumers schemas tests scripts bench examples
	$(BIN)/ruff check service consumers schemas tests scripts bench examples
	$(BIN)/mypy service consumers schemas tests scripts/services.py scripts/localkafka.py scripts/localtls.py scripts/lint_chart.py bench examples/http_agent.py
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

format: install
	$(BIN)/ruff format service consumers schemas tests scripts bench examples
	$(BIN)/ruff check --fix service consumers schemas tests scripts bench examples

# The Helm chart, offline: helm (v4.3.2, built with Go into .tools/) lint --strict, the rendered
# manifests against the Kubernetes schemas, and the chart tests (`pytest -m chart`).
lint-chart: install
	scripts/lint-chart

# The chaos suite (bench/chaos.py): its own durable PostgreSQL and Kafka broker, every role as a
# process, kill -9s and restarts under load, then the invariants in SQL. `chaos-short` runs in CI.
chaos: install
	$(BIN)/python -m bench.chaos $(ARGS)

chaos-short: install
	$(BIN)/python -m bench.chaos --short $(ARGS)

# The cost of a change (issue 16), in under a minute with start-up: bench/conversations.py on the
# full stack (its own durable PostgreSQL and Kafka broker), 200 ten-message conversations, 50 in
# flight, a 50 ms model. Prints CPU per conversation and runs/s; asserts no figure. Exits non-zero
# only when the benchmark itself fails (a process died, the runs did not finish in 120 s).
bench-smoke: install
	$(BIN)/python -m bench.conversations --runs 200 --concurrency 50 --model-latency 0.05 --timeout 120 $(ARGS)

# Builds the image with buildah on a debootstrap base and runs it read-only (root; installs
# buildah, podman, runc and debootstrap with apt when they are missing).
image-test: install
	scripts/image-test

services-up: install
	scripts/services up

services-down:
	scripts/services down

clean: services-down
	rm -rf .venv .tools .services .mypy_cache .ruff_cache
