# wxcrm: `make help` lists the targets. Only Python 3.11+ and pip are needed:
# the first target run installs uv into .tools/ and the project into .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet
	@touch $@

.PHONY: install
install: .venv/.synced ## Install the project and its tools into .venv

# The project as a wheel, compiled here: the service's user cannot write bytecode into a
# checkout root owns, and would compile every module at every start.
.PHONY: install-production
install-production: $(UV) ## Install the project alone (no test or lint tools) into .venv, for a deployment
	$(UV) sync --frozen --no-dev --no-editable --compile-bytecode --quiet

.PHONY: run
run: install ## Start the service on http://127.0.0.1:8000 with the WeChat simulator and demo data (SQLite under ./data)
	.venv/bin/wxcrm demo

.PHONY: test
test: install ## Run every test (also on PostgreSQL when WXCRM_TEST_POSTGRES_URL is set)
	.venv/bin/pytest
	node --test cloudfunctions/quickstartFunctions/test/

.PHONY: bench
bench: install ## Print the benchmarks' figures (SQLite; BENCH_DATABASE_URL for PostgreSQL)
	.venv/bin/python -m bench.drain $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	.venv/bin/python -m bench.drain --workers 2 $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	.venv/bin/python -m bench.actions $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	.venv/bin/python -m bench.customers $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	.venv/bin/python -m bench.console $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	.venv/bin/python -m bench.mixed $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	.venv/bin/python -m bench.logins $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	.venv/bin/python -m bench.import_bombs

.PHONY: bench-speed
bench-speed: install ## Print the speed figures in one run (SQLite; BENCH_DATABASE_URL for PostgreSQL)
	.venv/bin/python -m bench.speed $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))

.PHONY: bench-scaleout
bench-scaleout: install ## Two API processes and two workers on PostgreSQL, one of each killed half way: nothing acknowledged lost (BENCH_DATABASE_URL: the database it makes and drops)
	.venv/bin/python -m bench.scaleout --database-url $(or $(BENCH_DATABASE_URL),postgresql+asyncpg://postgres@127.0.0.1:5432/wxcrm_scaleout)

.PHONY: lint
lint: install ## ruff (lint and format check), mypy --strict and the import contracts
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache

.PHONY: format
format: install ## Fix what ruff can fix and format the code
	.venv/bin/ruff check --fix src tests bench
	.venv/bin/ruff format src tests bench

.PHONY: migrate
migrate: install ## Bring the configured database to the newest schema
	.venv/bin/wxcrm migrate

.PHONY: clean
clean: ## Remove the virtual environments and local data
	rm -rf .venv .tools data .pytest_cache .mypy_cache .ruff_cache
