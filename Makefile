# Two commands on a fresh clone:
#   make demo   compress + decompress real MNIST test digits with the shipped model
#   make test   the test suite
# Both set up .venv first (torch pinned to the local CPU build).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test bench clean-venv

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

clean-venv:
	rm -rf $(VENV)
