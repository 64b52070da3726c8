# Two commands matter for a newcomer: `make demo` (the main job on built-in data) and `make test`.
# Each installs what it needs when it is missing and is quick when it is there:
#   - a virtualenv in .venv/ (python3 -m venv; Debian's python3-venv through apt-get when venv is missing),
#   - in it torch==2.13.0 first (an unpinned torch pulls a multi-GB CUDA build), then this package with its
#     test and plot extras (nemo_toolkit[asr] 3.0, sentencepiece, jiwer, pytest, hypothesis, ruff, matplotlib),
#   - espeak-ng (the demo's speech synthesizer; the tests build a small corpus with it) through apt-get.
# Use your own environment instead: `make test PYTHON=python` (installs into it when imports fail).
VENV ?= .venv
DEMO_DIR ?= data/demo
TORCH_PIN ?= torch==2.13.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ifeq ($(origin PYTHON), undefined)
PYTHON := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed
else
DEPS := .deps-installed
endif

.PHONY: demo test test-slow demo-streaming demo-baselines bench bench-onnx lint format install espeak

demo: $(DEPS) espeak  ## build the espeak-ng corpus, train an aligner on it (all cores), transcribe the test splits
	$(PYTHON) recipes/run_demo.py --work-dir $(DEMO_DIR)

test: $(DEPS) espeak  ## the default offline CPU suite (one intra-op thread: the tests are small, the cores may be shared)
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -m "not slow" -q

test-slow: $(DEPS) espeak  ## end-to-end runs: resume after kill, DDP, disk full, aligning-layer timestamps
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -m slow -q

demo-streaming: $(DEPS) espeak  ## the streaming Chunkwise Aligner and NeMo cache-aware RNN-T, trained as make demo, streamed
	$(PYTHON) recipes/run_demo.py --work-dir $(DEMO_DIR) --streaming

demo-baselines: $(DEPS) espeak  ## the demo plus NeMo CTC and RNN-T, each trained the same way, in one table
	$(PYTHON) recipes/run_demo.py --work-dir $(DEMO_DIR) --baselines

bench: $(DEPS)  ## decoder/training-step timings vs NeMo RNN-T, CTC and AED (one thread; writes benchmarks/results/)
	OMP_NUM_THREADS=1 $(PYTHON) benchmarks/run.py --out benchmarks/results/$$(date +%Y-%m-%d)-cpu.md

bench-onnx: $(DEPS)  ## deployment on 2 threads: transcribe() vs ONNX fp32/int8 vs sherpa-onnx RNN-T (after demo-baselines)
	@$(PYTHON) -c "import sherpa_onnx" 2>/dev/null || $(PYTHON) -m pip install -q -e ".[bench]"
	$(PYTHON) benchmarks/onnx_bench.py --out benchmarks/results/$$(date +%Y-%m-%d)-onnx-cpu.md

lint: $(DEPS)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: $(DEPS)
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

install: $(DEPS)

# A venv whose pip works (Debian's python3 without python3-venv leaves one without pip: start again).
$(VENV)/bin/python:
	@if ! python3 -m venv $(VENV) >/dev/null 2>&1 || [ ! -x $(VENV)/bin/pip ]; then \
		rm -rf $(VENV); \
		echo "make: installing python3-venv with apt-get (needed to create $(VENV))"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv python3-pip >/dev/null \
			&& python3 -m venv $(VENV) \
			|| { echo "make: could not create $(VENV): install python3-venv, or pass PYTHON=<your python>"; exit 1; }; \
	fi

$(VENV)/.deps-installed: setup.py | $(VENV)/bin/python
	@echo "make: installing $(TORCH_PIN) and this package with its test and plot extras into $(VENV)/"
	$(PYTHON) -m pip install -q $(TORCH_PIN)
	$(PYTHON) -m pip install -q -e ".[test,plot]"
	@touch $@

.deps-installed: setup.py
	@$(PYTHON) -c "import torch, nemo, jiwer, pytest, hypothesis, onnxruntime, nemo_aligner_plugin" 2>/dev/null || { \
		echo "make: installing $(TORCH_PIN) and this package into $$($(PYTHON) -c 'import sys; print(sys.prefix)')"; \
		$(PYTHON) -m pip install -q $(TORCH_PIN) && $(PYTHON) -m pip install -q -e ".[test,plot]"; }
	@touch $@

espeak:
	@command -v espeak-ng >/dev/null 2>&1 || { \
		echo "make: installing espeak-ng with apt-get"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq espeak-ng >/dev/null \
		|| { echo "make: could not install espeak-ng: run 'apt-get install espeak-ng' as root"; exit 1; }; }
