# irflow: `make test` and `make run` each do all their set-up from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install browser test run lint format bench policy clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Debian's headless Chromium for the Temporal UI browser test (apt, never a browser download).
browser:
	@bash scripts/install-browser

test: install browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# Two processes (one per core), whole files per process: each has its own dev server and moto.
	$(BIN)/pytest -n 2 --dist loadfile --durations=15 -m "not solo"
	# Timed acceptance lines, alone: a stopwatch beside another busy pytest measures the neighbour.
	$(BIN)/pytest -m solo

run: install
	$(BIN)/python -m irflow.devstack.run

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench.containment

policy: install
	$(BIN)/irflow policy > infra/worker-policy.json
	$(BIN)/irflow policy --member-template > infra/member-role.json
	$(BIN)/python -m activities.memory_document > infra/ssm-capture-memory.json

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache *.egg-info
