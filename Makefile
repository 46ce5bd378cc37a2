# One way to run things, for people and CI alike.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint unit bench bench-ranking constraints image-test clean

# Installs the versions the tests ran with (constraints.txt), not whatever is newest today.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/backout demo

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/ingest_wrk.py
	$(BIN)/python bench/suspects.py
	$(BIN)/python bench/github_calls.py
	$(BIN)/python bench/slack_ack.py
	$(BIN)/python bench/slack_lost_answer.py
	$(BIN)/python bench/slack_calls.py
	$(BIN)/python bench/slack_marks.py
	$(BIN)/python bench/probes.py
	$(BIN)/python bench/controller_events.py
	$(BIN)/python bench/git_outage.py
	$(BIN)/python bench/controller_storm.py
	$(BIN)/python bench/ingest_mixed.py
	$(BIN)/python bench/cli_start.py
	$(BIN)/python bench/body_limits.py
	$(BIN)/python bench/storm.py
	$(BIN)/python bench/freeze.py
	$(BIN)/python bench/crash_recovery.py
	$(BIN)/python bench/review_risk_calls.py
	$(BIN)/python bench/automerge_calls.py
	$(BIN)/python bench/incident_branch.py

bench-ranking: $(STAMP)
	$(BIN)/python bench/ranking/run.py
	$(BIN)/python bench/ranking/controllers.py
	$(BIN)/python bench/ranking/replay.py --git-only
	$(BIN)/python bench/review_risk.py

# The Docker image as users run it: built from this checkout, then `backout demo` in it without a
# network (the demo talks to itself over loopback). Needs a Docker daemon, which CI does not have;
# tests/integration/test_wheel.py checks the same package from the wheel in CI.
IMAGE ?= backout:image-test
image-test:
	docker build --tag $(IMAGE) .
	docker run --rm --network none $(IMAGE) \
	  sh -c 'backout demo && test -s demo-output/INC-1.md && test -s demo-output/INC-1.html && test -s demo-output/INC-1.png'

# Re-resolve every dependency from pyproject.toml in a scratch venv and pin the result.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install --quiet -e '.[dev]'
	{ head -n 2 constraints.txt; .venv-constraints/bin/pip freeze --exclude-editable | grep -v '^backout'; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .venv-constraints

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
