# Two commands matter on a fresh machine: `make demo` (the main job) and `make test` (every test).
# Both install what they need: a virtualenv in .venv and the control-plane binaries (cached outside the repo).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

CACHE  ?= $(or $(PSMDB_BACKUP_CACHE),$(HOME)/.cache/psmdb-backup-webhook)
AZURITE_VERSION := 3.37.0

.PHONY: demo test check unit e2e control-plane helm yamlscalars azurite promtool container-tools kubeconform wrk bench bench-controller bench-companion soak docs clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

control-plane:
	@bash tools/build-control-plane.sh >/dev/null

# kubectl's YAML reading (sigs.k8s.io/yaml), for the loader's scalar test.
yamlscalars:
	@bash tools/build-yamlscalars.sh >/dev/null

# helm, built from its Go module (helm.sh/helm/v4) into the cache, for the chart tests.
helm:
	@bash tools/build-helm.sh >/dev/null

# Azure Blob emulator for the PBM simulator's storage tests (npm, cached outside the repository).
azurite:
	@test -x $(CACHE)/node/node_modules/.bin/azurite-blob || \
		npm install --silent --no-audit --no-fund --prefix $(CACHE)/node azurite@$(AZURITE_VERSION) >/dev/null

# promtool (from Debian's prometheus package, cached) checks and unit-tests the alert rules.
promtool:
	@bash tools/get-promtool.sh >/dev/null

# kubeconform, built from its Go module (cached), runs over the examples with `schemas export`'s schemas.
kubeconform:
	@bash tools/build-kubeconform.sh >/dev/null

# wrk (Debian) drives the admission benchmark.
wrk:
	@bash tools/install-wrk.sh

# podman & co. (Debian) for the image end-to-end test.
container-tools:
	@bash tools/install-container-tools.sh

demo: $(STAMP)
	@$(PY) tools/demo.py

# Static checks (configuration in pyproject.toml): lint, formatting, types, and the import layering contracts.
check: $(STAMP)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports

# Every test: the static checks, then unit, golden, fuzz and the end-to-end tests against a real kube-apiserver
# (which must not be skipped).
test: check control-plane helm yamlscalars azurite promtool container-tools kubeconform
	@PSMDB_REQUIRE_E2E=1 $(PY) -m pytest tests

unit: $(STAMP)
	@$(PY) -m pytest tests/unit

e2e: $(STAMP) control-plane
	@PSMDB_REQUIRE_E2E=1 $(PY) -m pytest -m e2e tests

# The benchmarks (docs/benchmarks.md); on demand only, never part of `make test`.
bench: $(STAMP) wrk control-plane
	@$(PY) bench/lint.py
	@$(PY) bench/lint_memory.py
	@$(PY) bench/admission.py
	@$(PY) bench/apply.py

bench-controller: $(STAMP) control-plane
	@$(PY) bench/controller.py

# The companion: schedule slots against a straight-through baseline, the watchdog over 20,000 Backups (~10 min).
bench-companion: $(STAMP) control-plane
	@$(PY) bench/companion.py

# 10 min of admission traffic while the API server pauses and the certificate rotates (docs/benchmarks.md).
soak: $(STAMP) control-plane
	@$(PY) bench/soak.py

docs: $(STAMP)
	@$(PY) -m webhook.lint.rulesdoc > docs/rules.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
