# Handover: `make demo` plays the East Anglia scenario and keeps serving; `make test` runs every check.
# Needs only Python 3.11+ and make; PostgreSQL comes from HANDOVER_DATABASE_URL, binaries on PATH,
# or (installed here when neither exists) the pip package pgserver.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit conformance serve bench bench-load bench-soak bench-ui profiles clean screenshots vendor-ui safety bench-failover compose-check

$(STAMP): pyproject.toml setup.py service/auditlog/_treehash.c
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@if [ -z "$$HANDOVER_DATABASE_URL" ] && ! $(BIN)/python -c 'import sys; from service.store.embedded import find_postgres_bindir; sys.exit(find_postgres_bindir() is None)'; then \
		echo "no PostgreSQL binaries found: installing the pgserver package"; \
		$(BIN)/python -m pip install --quiet -e '.[embedded]'; fi
	@touch $(STAMP)

# HANDOVER_DEV_IDP=1: the development OIDC provider signs staff in to the pages at /ui/ (its URL is printed).
demo: $(STAMP)
	HANDOVER_DEV_IDP=$${HANDOVER_DEV_IDP:-1} $(BIN)/handover demo

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

serve: $(STAMP)
	$(BIN)/handover serve

# The independent contract sample in ../shared/conformance, against this checkout, with the service's own
# freshness window (the sample dates its messages when it runs).
conformance: $(STAMP)
	$(BIN)/python -m pip install --quiet httpx
	HANDOVER_CHECKOUT=$(CURDIR) SUT_BIN=$(CURDIR)/$(BIN) $(BIN)/pytest -p no:cacheprovider -c ../shared/conformance/pytest.ini --rootdir ../shared/conformance ../shared/conformance -q

# Human-readable profile pages (also served at /ui/profiles) from the StructureDefinitions.
profiles: $(STAMP)
	$(BIN)/python -m service.profilepages docs/profiles

# Benchmarks report ratios against a baseline measured in the same run (never timed assertions in tests).
bench: $(STAMP)
	$(BIN)/python bench/audit_verify.py --entries 1000000
	$(BIN)/python bench/validation.py
	$(BIN)/python bench/worklist.py

# The clinical safety case: runs the tests the hazard log names (or reads SAFETY_JUNIT, a pytest --junitxml report
# of an earlier run), then renders docs/safety/hazard-log.html and docs/safety/safety-case.md with their results.
SAFETY_JUNIT ?=
safety: $(STAMP)
	@status=0; junit="$(SAFETY_JUNIT)"; \
	if [ -z "$$junit" ]; then junit=var/safety/junit.xml; mkdir -p var/safety; \
		$(BIN)/pytest -p no:cacheprovider --hazard-tests-only --junitxml=$$junit || status=$$?; fi; \
	$(BIN)/python -m service.safety --junit "$$junit" docs/safety || { [ $$status -ne 0 ] || status=1; }; \
	exit $$status

# Intake load (issue 12): ceiling, hub at 1 and 16 clients with 1 and 2 workers, latency, push, growth, MESH peer.
bench-load: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.load --growth

# Every staff page in headless Chromium at 1366x800 and 375x800 (a phone) into docs/screenshots/ (list: tests/ui/screenshots.py).
screenshots: $(STAMP)
	HANDOVER_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -q -p no:cacheprovider tests/ui/test_screenshots.py

# Re-vendor the NHS.UK frontend (service/ui/static/nhsuk) and axe-core (tests/ui/vendor) from npm.
vendor-ui:
	scripts/vendor-ui.sh

# Soak (issue 16, not part of `make test`): half the measured maximum for 30 minutes, then the verdict.
# SOAK_ARGS="--minutes 6 --hostile 0.1" for a shorter look with 10% hostile requests.
bench-soak: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# The worklist and governance pages with 10,000 episodes through a real server, against a /healthz baseline;
# prints the query plans (target: each page under 300 ms).
bench-ui: $(STAMP)
	$(BIN)/python bench/ui_pages.py --episodes 10000

# Failover of a real Patroni cluster (issue 27; needs etcd-server, haproxy, PostgreSQL 15): leader killed and
# planned switchover, three rounds each with the test timings and the production ones; messages lost must be 0.
# FAILOVER_ARGS="--rounds 1 --timings test" for a quick look.
bench-failover: $(STAMP)
	$(BIN)/python -m bench.failover $(FAILOVER_ARGS)

# The containers (issue 27, not part of `make test`; needs docker and docker-compose): builds the images, starts
# etcd, two Patroni-managed PostgreSQL nodes and two hubs (docker-compose.yml), sends signed referrals, kills the
# Patroni leader, and checks the next referral is receipted; then removes the stack. COMPOSE_CHECK_ARGS=--keep
# leaves it running. BASE_IMAGE=... chooses the base (default: python:3.11-slim, else one made from Debian).
compose-check: $(STAMP)
	PYTHONPATH=$(CURDIR) $(BIN)/python -m deploy.compose.check $(COMPOSE_CHECK_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
