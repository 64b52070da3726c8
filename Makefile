# Two commands matter for a newcomer: `make demo` (the main job on built-in data) and `make test`.
PYTHON ?= python
DEMO_DIR ?= data/demo

.PHONY: install test test-slow lint format demo demo-baselines bench

install:  ## torch first, pinned, so pip takes the CPU wheel instead of a multi-GB CUDA build
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[test,plot]"

test:  ## the default offline CPU suite (one intra-op thread: the tests are small, the cores may be shared)
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -m "not slow" -q

test-slow:
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -m slow -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

demo:  ## build the espeak-ng corpus, train an aligner on it (all cores), transcribe the test splits
	$(PYTHON) recipes/run_demo.py --work-dir $(DEMO_DIR)

demo-baselines:  ## the demo plus NeMo CTC and RNN-T, each trained the same way after the other, in one table
	$(PYTHON) recipes/run_demo.py --work-dir $(DEMO_DIR) --baselines

bench:  ## decoder/training-step timings vs NeMo RNN-T, CTC and AED (one thread; writes benchmarks/results/)
	OMP_NUM_THREADS=1 $(PYTHON) benchmarks/run.py --out benchmarks/results/$$(date +%Y-%m-%d)-cpu.md
