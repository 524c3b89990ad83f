# The two commands: `make run` (set up, then the whole thing with demo data) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run prod-local test setup lint bench clean histories lock mutants faults

run: setup
	$(BIN)/parcours dev

# The production topology without Docker, until Ctrl-C: PostgreSQL (a private cluster), Temporal,
# `parcours setup`, two workers, the UI on several uvicorn processes, an SMTP sink (tests/topology.py).
prod-local: setup
	$(BIN)/python -m tests.topology $(ARGS)

test: setup
	$(BIN)/pytest

setup: $(VENV)/.installed node_modules/.installed

# Dependencies come from the lockfile (exact versions and hashes), the project itself on top.
$(VENV)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# Re-resolve the lockfiles after changing dependencies in pyproject.toml (see README).
LOCK = $(BIN)/uv pip compile pyproject.toml --generate-hashes --universal --python-version 3.11 --quiet
lock: $(VENV)/.installed
	$(BIN)/pip install --quiet uv
	$(LOCK) $(UPGRADE) -o requirements.lock
	$(LOCK) $(UPGRADE) --extra dev -o requirements-dev.lock

# The French State design system and htmx, served by the admin UI as static files.
# --ignore-scripts: the DSFR's post-install script expects a DSFR project scaffold.
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy definitions workflows activities store worker admin_ui parcours

# Record a release's pathway histories for the replay test: `make histories RELEASE=v1.1.0`
# (a git tag; CODE=. records the working tree instead of a checkout of the tag).
histories: setup
	$(BIN)/python tests/histories/record.py --release $(RELEASE) $(if $(CODE),--code $(CODE))

# The curated mutation score (on demand, too slow for CI): see bench/mutants.py.
mutants: setup
	$(BIN)/python bench/mutants.py

bench: setup
	$(BIN)/python bench/summary.py

# The fault suite on the production topology (tests/topology.py), with 200 pathways in flight: prints,
# for each fault, pathways lost, e-mails sent twice, pathways terminated, history growth, catch-up time
# and what users saw (about 40 minutes; `make faults ARGS="--only a --pathways 50"` for a part).
faults: setup
	$(BIN)/python bench/faults.py $(ARGS)

clean:
	rm -rf $(VENV) .parcours
