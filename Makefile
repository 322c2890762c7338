# make demo: set up .venv and run the whole pipeline on built-in data.   make test: set up .venv and run the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# A machine where nvidia-smi finds a GPU installs mxnet-cu112; override with `make REQUIREMENTS=requirements.txt`.
REQUIREMENTS ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo requirements-gpu.txt || echo requirements.txt)
STAMP := $(VENV)/.installed-$(basename $(notdir $(REQUIREMENTS)))
TEST_STAMP := $(VENV)/.installed-test

.PHONY: venv test demo bench lfw clean

venv: $(STAMP)

$(STAMP): $(REQUIREMENTS) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(REQUIREMENTS)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

# the test-only and optional-feature packages (requirements-test.txt) come on top of the main set
$(TEST_STAMP): requirements-test.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/python -m lightcnn.tools.demo $(if $(DATA),--data $(DATA)) $(if $(PAIRS),--pairs $(PAIRS))

bench: venv
	$(BIN)/python -m lightcnn.tools.bench_model --network lightcnn9 lightcnn29 --json bench_model.json

# the real-face benchmark (hours on 2 CPU cores): LightCNN-9 trained on LFW, verified on unseen people
lfw: venv
	$(BIN)/python -m lightcnn.tools.lfw_benchmark $(if $(LFW),--lfw-root $(LFW))

clean:
	rm -rf $(VENV) demo_output lfw_output .pytest_cache
