# Order execution engine: developer and CI entry points (GNU make).
#   make help | install | servers | migrate | run | redrive | test | test-unit | lint | fmt
#        | chaos | bench | floor | up | down | clean
# Every target works in a fresh clone: the ones that need Python depend on install.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Written after a successful install; newer than every install input means "up to date".
STAMP := $(VENV)/.install-stamp

SERVICES := gateway router executor notifier
INSTALL_INPUTS := requirements/constraints.txt requirements/dev.txt \
	shared/pyproject.toml $(foreach s,$(SERVICES),services/$(s)/pyproject.toml) \
	cli/pyproject.toml
DOCKERFILES := $(foreach s,$(SERVICES),services/$(s)/Dockerfile)

# Integration tests use the local servers unless told otherwise.
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
TEST_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
PYTEST_ARGS ?=

# make run: replicas per process type. Replicas of gateway and notifier share their
# port (HTTP_REUSE_PORT): the kernel spreads connections over them. Ports and every
# other setting are the services' own (environment, then .env, then defaults): make
# passes on what it is given (make run GATEWAY_PORT=8000) and sets nothing itself.
GATEWAYS ?= 1
ROUTERS ?= 1
EXECUTORS ?= 1
NOTIFIERS ?= 1
SHARE_PORTS := $(filter-out 1,$(GATEWAYS) $(NOTIFIERS))

# docker compose (make up): replicas of the scalable services.
COMPOSE ?= docker compose

# The servers the services are pointed at: environment, then .env, then defaults.
SETTINGS_URLS := $(BIN)/python -c 'from shared.settings import load_settings; s = load_settings(); print(s.database_url, s.amqp_url)'
# Where make run's services will answer, read the same way.
SETTINGS_ADDRESSES := $(BIN)/python -c 'from shared.settings import load_settings; s = load_settings(); print(s.gateway_port, s.notifier_public_url)'
# The same probe as the tests' fixtures: with a Docker engine they use testcontainers.
DOCKER_ANSWERS := $(BIN)/python -c 'import docker; docker.from_env(timeout=2).ping()' >/dev/null 2>&1

.PHONY: help install servers migrate run redrive test test-unit lint fmt up down clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(INSTALL_INPUTS) | $(BIN)/python
	$(BIN)/python -m pip install -c requirements/constraints.txt -r requirements/dev.txt \
		-e shared $(foreach s,$(SERVICES),-e services/$(s)) -e cli
	touch $@

install: $(STAMP) ## Create .venv and install everything (skipped when nothing changed)

servers: install ## Start the local PostgreSQL and RabbitMQ if installed and stopped
	@# Settings out of range stop here, each named (exit 2), before anything starts.
	urls=$$($(SETTINGS_URLS)) && tools/local-servers $$urls

migrate: install servers ## Create or migrate the schema at DATABASE_URL (idempotent)
	$(BIN)/python -m shared.migrations

run: install migrate ## Run all services locally (GATEWAYS=n ROUTERS=n EXECUTORS=n NOTIFIERS=n); Ctrl-C stops them
	@read -r port ws <<<"$$($(SETTINGS_ADDRESSES))"; \
	echo "Dashboard: http://localhost:$$port/"; \
	echo "API:       http://localhost:$$port/ (Swagger UI: http://localhost:$$port/docs)"; \
	echo "WebSocket: $$ws"; \
	echo "Replicas:  gateway=$(GATEWAYS) router=$(ROUTERS) executor=$(EXECUTORS) notifier=$(NOTIFIERS) (Ctrl-C stops everything)"
	@# -e /dev/null: the services read .env themselves, under the real environment;
	@# honcho's own reading of it would override make's variables and the shell's.
	PATH="$(abspath $(BIN)):$$PATH" $(if $(SHARE_PORTS),HTTP_REUSE_PORT=true) \
		exec $(BIN)/honcho start -f Procfile -e /dev/null \
		-c gateway=$(GATEWAYS),notifier=$(NOTIFIERS),router=$(ROUTERS),executor=$(EXECUTORS)

test: install ## All tests, integration included (starts the local servers, or Docker's)
	if ! $(DOCKER_ANSWERS); then tools/local-servers '$(TEST_DATABASE_URL)' '$(TEST_AMQP_URL)'; fi
	TEST_DATABASE_URL='$(TEST_DATABASE_URL)' TEST_AMQP_URL='$(TEST_AMQP_URL)' \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks: DATABASE_URL / AMQP_URL from the environment, else the local servers.
BENCH_DATABASE_URL ?= $(or $(DATABASE_URL),postgresql://postgres@127.0.0.1:5432/postgres)
BENCH_AMQP_URL ?= $(or $(AMQP_URL),amqp://guest:guest@127.0.0.1:5672/)
BENCH_ARGS ?=

.PHONY: chaos
chaos: install ## Chaos suite, long form: 2,000 orders, 20 kills, RabbitMQ and PostgreSQL restarts (CHAOS_ARGS='--short')
	tools/local-servers '$(BENCH_DATABASE_URL)' '$(BENCH_AMQP_URL)'
	DATABASE_URL='$(BENCH_DATABASE_URL)' AMQP_URL='$(BENCH_AMQP_URL)' \
		$(BIN)/python -m tools.chaos $(CHAOS_ARGS)

.PHONY: bench
bench: install ## Benchmark scenarios S1-S5 on this machine (~9 min; BENCH_ARGS='--scenario S2')
	tools/local-servers '$(BENCH_DATABASE_URL)' '$(BENCH_AMQP_URL)'
	DATABASE_URL='$(BENCH_DATABASE_URL)' AMQP_URL='$(BENCH_AMQP_URL)' \
		$(BIN)/python -m tools.bench $(BENCH_ARGS)

.PHONY: floor
floor: install ## The architecture's floor: each primitive's CPU cost alone, per order (~3 min; FLOOR_ARGS='--help')
	tools/local-servers '$(BENCH_DATABASE_URL)' '$(BENCH_AMQP_URL)'
	DATABASE_URL='$(BENCH_DATABASE_URL)' AMQP_URL='$(BENCH_AMQP_URL)' \
		$(BIN)/python -m tools.floor $(FLOOR_ARGS)

redrive: install ## Move parked messages back to the queues that parked them (REDRIVE_ARGS='--max 10')
	$(BIN)/python -m shared.messaging.redrive $(REDRIVE_ARGS)

test-unit: install ## Tests that need no external service
	$(BIN)/python -m pytest -m 'not integration and not system' $(PYTEST_ARGS)

lint: install ## ruff check, ruff format --check, mypy, hadolint (reports every failure)
	@status=0; \
	echo '--- ruff check'; $(BIN)/ruff check . || status=1; \
	echo '--- ruff format --check'; $(BIN)/ruff format --check . || status=1; \
	echo '--- mypy'; $(BIN)/mypy || status=1; \
	echo '--- hadolint'; $(BIN)/hadolint $(DOCKERFILES) || status=1; \
	exit $$status

fmt: install ## Format and apply safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

up: ## docker compose up (GATEWAYS=n ROUTERS=n EXECUTORS=n NOTIFIERS=n); needs a Docker engine
	$(COMPOSE) up --build --detach --wait --scale gateway=$(GATEWAYS) \
		--scale router=$(ROUTERS) --scale executor=$(EXECUTORS) --scale notifier=$(NOTIFIERS)
	@echo "Dashboard: http://localhost:3000/"

down: ## docker compose down (volumes kept; add COMPOSE_DOWN_ARGS=-v to drop them)
	$(COMPOSE) down --remove-orphans $(COMPOSE_DOWN_ARGS)

clean: ## Remove the virtualenv, caches and test-output/ (bench and chaos reports)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -not -path './.git/*' -exec rm -rf {} +
