# One command to set up and run the demo, one to set up and run the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: setup demo test test-all train-all evidence clean

$(BIN)/precal: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of torch first: a bare `torch` requirement can resolve to a multi-GB CUDA build.
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/precal

setup: $(BIN)/precal

demo: setup
	$(BIN)/precal dashboard

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m "" --durations=15

train-all: setup
	PATH=$(BIN):$$PATH bash scripts/train_all.sh

evidence: setup
	PATH=$(BIN):$$PATH $(BIN)/python -m experiments.evidence

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
