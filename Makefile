# fpdctl developer entry points. `make demo` and `make test` work on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first, pinned, so nothing else can pull a different build. TORCH_SPEC picks
# the version, TORCH_INDEX the wheel index: on public PyPI, Linux `torch==2.13.0` is the CUDA
# build, so CPU-only machines use make TORCH_INDEX=https://download.pytorch.org/whl/cpu (this
# project's development machines resolve torch==2.13.0 to the CPU wheel from a local mirror).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.fpdctl-installed
DEMO_DIR ?= demo-output

.PHONY: reference-teacher install test test-all lint lint-imports reliability demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Formatting and lint ([tool.ruff]) and the layering contracts ([tool.importlinter] in
# pyproject.toml) first: a broken layer fails fast.
test: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m ''

lint-imports: $(STAMP)
	$(BIN)/lint-imports

# Format the code in place and apply ruff's safe fixes (`make test` only checks).
lint: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The fault and bad-input suite alone (it also runs in `make test`), with its table refreshed in
# docs/RELIABILITY.md.
reliability: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not gpu' tests/reliability --reliability-report=build/reliability.json; \
	  status=$$?; $(BIN)/python scripts/reliability_report.py build/reliability.json docs/RELIABILITY.md; \
	  exit $$status

# Train the shipped reference teachers (synthetic-hg2x64, synthetic-coco-hg2x64) and rewrite
# their model cards; resumable.
reference-teacher: $(STAMP)
	bash scripts/reference_teacher.sh runs/reference-teacher runs/reference-coco

demo: $(STAMP)
	bash examples/demo.sh $(DEMO_DIR)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .import_linter_cache .grimp_cache build *.egg-info
