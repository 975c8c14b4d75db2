# 404NotSound. `make demo` captions a sample lecture; `make test` runs the tests.
# Both install what they need first (system packages when run as root, the venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-deps
TORCH_CPU := torch==2.13.0
DEMO_DIR := build/demo

.PHONY: install system-deps test demo bench bench-notes lint clean docker-check

install: $(STAMP) $(SYSTEM_STAMP)

$(SYSTEM_STAMP): scripts/system-deps.sh
	@scripts/system-deps.sh
	@mkdir -p $(VENV) && touch $@

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@# CPU build of torch first where this machine has it; elsewhere pip picks torch from pyproject.
	@$(PY) -m pip install -q "$(TORCH_CPU)" || echo "note: $(TORCH_CPU) not available here; using pyproject's torch range"
	$(PY) -m pip install -q -e '.[whisper,dev]'
	@# The speaker model without its stale metadata (webrtcvad from source, the typing backport):
	@# its real needs are in dev (webrtcvad-wheels, librosa, scipy) and the torch above.
	$(PY) -m pip install -q --no-deps "resemblyzer>=0.1.4,<0.2"
	@touch $@

test: install
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check notsound live capture wire common models summarizer library slides tests bench

$(DEMO_DIR)/lecture.flac: scripts/make-sample.sh | install
	@scripts/make-sample.sh $@

# The session goes into ./lectures, the default library: `notsound open` (and history, search,
# ask) then find it with no flag.
demo: install $(DEMO_DIR)/lecture.flac
	$(VENV)/bin/notsound live --input $(DEMO_DIR)/lecture.flac --engine whisper \
		--session demo-$$(date +%Y%m%d-%H%M%S)
	@echo "next: $(VENV)/bin/notsound open   (the lecture room, in the browser)"

bench: install
	$(PY) bench/run.py

bench-notes: install
	$(PY) bench/notes_bench.py

# Builds the worker image and runs nginx + 2 worker containers here (root; installs docker.io
# when missing). Not part of `make test` or CI: see README, Development.
docker-check: install
	PY=$(abspath $(PY)) TORCH_CPU="$(TORCH_CPU)" scripts/docker-check.sh

clean:
	rm -rf build bench/out .pytest_cache
