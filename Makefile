# irflow: `make test` and `make run` each do all their set-up from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install browser test run lint format bench policy mutation clean

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

# Mutation testing of containment, undo and the decision policy against the fast tests ([tool.mutmut] in pyproject.toml,
# figures in bench/MUTATION.md): not part of CI. Niced and two children at most, so the machine stays usable; results
# are cached in mutants/ per function, so a second run tests only what changed. Bytecode kept apart: mutants/ starts as
# a copy of the sources with their __pycache__, compiled from (and naming) the originals.
mutation: install
	PYTHONPYCACHEPREFIX=$(CURDIR)/mutants/.pycache nice -n 19 $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut export-cicd-stats
	@cat mutants/mutmut-cicd-stats.json; echo
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache *.egg-info
