# Two commands for a fresh machine:  `make demo`  and  `make test`.
# Both are idempotent: set-up is skipped when the venv stamp is newer than its inputs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgeforge-installed
DIGITS := examples/digits
DEMO_OUT := build/digits
TEMPLATE_FILES := $(shell find templates -type f -not -path 'templates/report/*')
REPORT_TEMPLATES := $(shell find templates/report -type f)

.PHONY: setup demo test test-fast lint stubs bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $@

$(DIGITS)/model.pt2 $(DIGITS)/train.npz $(DIGITS)/data.npz $(DIGITS)/labels.txt &: $(STAMP) $(DIGITS)/train.py $(DIGITS)/model.py
	$(PY) $(DIGITS)/train.py --out $(DIGITS)

$(DEMO_OUT)/model-manifest.json: $(DIGITS)/model.pt2 $(DIGITS)/data.npz $(DIGITS)/labels.txt $(TEMPLATE_FILES)
	$(VENV)/bin/sdkgen build $(DIGITS)/model.pt2 --profile pixel-8 --data $(DIGITS)/data.npz \
		--platform android,ios,python --name DigitsClassifier --package com.example.digits \
		--labels $(DIGITS)/labels.txt --out $(DEMO_OUT)

$(DEMO_OUT)/report.html: $(DEMO_OUT)/model-manifest.json $(REPORT_TEMPLATES) $(wildcard compressor/bundle/report*.py)
	$(VENV)/bin/sdkgen report $(DEMO_OUT)

demo: $(DEMO_OUT)/report.html
	@echo "demo output: $(DEMO_OUT)"
	@echo "report: $(abspath $(DEMO_OUT))/report.html"

# pytest-xdist: one worker per core (at most 4: each holds torch and TensorFlow; tests/services.py splits the shared
# Redis's 15 databases between them); worksteal rebalances when one worker draws the long model builds.
XDIST := -n auto --maxprocesses 4 --dist worksteal

test: $(STAMP)
	$(PY) -m pytest $(XDIST) --durations=15

# everything not marked slow: the edit-test loop (about 2 minutes on 2 cores)
test-fast: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not slow" --durations=15

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy compressor server

# after editing protos/: regenerate the committed gRPC stubs (tests/test_packaging.py checks they are current)
stubs: $(STAMP)
	$(PY) -m server.stubs

bench: $(DIGITS)/model.pt2
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) bench/compress.py
	$(PY) bench/mixed_precision.py

clean:
	rm -rf build
