# make demo: set up .venv and run the whole pipeline on built-in data.   make test: set up .venv and run the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# A machine where nvidia-smi finds a GPU installs mxnet-cu112; override with `make REQUIREMENTS=requirements.txt`.
REQUIREMENTS ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo requirements-gpu.txt || echo requirements.txt)
STAMP := $(VENV)/.installed-$(basename $(notdir $(REQUIREMENTS)))
TEST_STAMP := $(VENV)/.installed-test
HOROVOD_STAMP := $(VENV)/.installed-horovod
# Horovod for --kv-store horovod: MXNet only, the Gloo controller, no MPI (even where MPI is installed). The build has
# to see the venv's MXNet, hence --no-build-isolation (and wheel, which that needs). pip keeps the wheel it built in
# its cache and reuses it on the next install of the same version, so only the first install compiles (minutes).
HOROVOD_BUILD := HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITH_GLOO=1 \
	HOROVOD_WITHOUT_MPI=1 MAKEFLAGS=-j$(shell nproc 2>/dev/null || echo 2)

.PHONY: venv horovod test demo bench lfw clean

venv: $(STAMP)

$(STAMP): $(REQUIREMENTS) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(REQUIREMENTS)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

# the test-only and optional-feature packages (requirements-test.txt) come on top of the main set; the alignment
# pins (MediaPipe) without their declared dependencies, which would add a second OpenCV (see requirements-align.txt)
$(TEST_STAMP): requirements-test.txt requirements-align.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-align.txt
	touch $@

# optional: Horovod with MXNet support in the same venv (`make test` builds it: its tests run in CI)
horovod: $(HOROVOD_STAMP)

$(HOROVOD_STAMP): $(STAMP) requirements-horovod.txt
	@command -v cmake >/dev/null && command -v g++ >/dev/null || { echo "make horovod: Horovod compiles from" \
	"source and needs cmake and g++ (Debian: apt-get install cmake g++; .ci/run installs them)"; exit 1; }
	$(BIN)/python -m pip install --quiet $$(grep '^wheel==' requirements-horovod.txt)
	$(HOROVOD_BUILD) $(BIN)/python -m pip install --quiet --no-build-isolation -r requirements-horovod.txt
	@# a wheel cached from a build that did not see MXNet would install without it: say so, not later in a test
	@$(BIN)/python -c "import horovod.mxnet" || { echo "Horovod has no MXNet support: remove the cached wheel" \
	"(pip cache remove horovod) and run make horovod again"; exit 1; }
	touch $@

# two pytest processes, each running whole files (a file's shared fixtures are made once): alone, the suite keeps
# 1.4 of 2 cores busy (a test waiting on a one-core subprocess), two keep both busy. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(TEST_STAMP) $(HOROVOD_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

demo: venv
	$(BIN)/python -m benchmarks.demo $(if $(DATA),--data $(DATA)) $(if $(PAIRS),--pairs $(PAIRS))

bench: venv
	$(BIN)/python -m benchmarks.bench_model --network lightcnn9 lightcnn29 --json bench_model.json

# the real-face benchmark (about an hour on 2 CPU cores): LightCNN-9 trained on LFW, verified on unseen people
lfw: venv
	$(BIN)/python -m benchmarks.lfw_benchmark $(if $(LFW),--lfw-root $(LFW))

clean:
	rm -rf $(VENV) demo_output lfw_output .pytest_cache
