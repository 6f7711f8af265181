# Two commands on a fresh clone:
#   make demo   compress + decompress real MNIST test digits with the shipped model
#   make test   the test suite
# Both set up .venv first (torch pinned to the local CPU build).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test bench wheel-check clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,bench]"
	touch $(STAMP)

demo: setup
	$(PY) examples/mnist_demo.py

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench --quick

# The built wheel in a clean venv (torch pinned as above): the CLI codes real files,
# and nothing from training/ ships.
WHEEL_DIR := build/wheel-check
wheel-check: setup
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w $(WHEEL_DIR) .
	python3 -m venv $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/python -m pip install -q torch==2.13.0
	$(WHEEL_DIR)/venv/bin/python -m pip install -q $(WHEEL_DIR)/bbcodec-*.whl
	cd $(WHEEL_DIR) && venv/bin/python ../../.ci/wheel_smoke.py bbcodec-*.whl

clean-venv:
	rm -rf $(VENV)
