# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test install install-test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(PY) examples/lenet.py

# the whole suite (OpenCL on the first usable device: Intel's CPU runtime here), then the
# OpenCL tests again on PoCL when a usable PoCL is installed (Debian: pocl-opencl-icd)
test: $(VENV)/.installed-test
	$(PY) -m pytest tests
	@if $(PY) -m runtime.opencl_device pocl > .venv/pocl-probe.txt 2>&1; then \
		echo "== the OpenCL tests again, on PoCL"; \
		KILN_OPENCL_DEVICE=pocl $(PY) -m pytest -q tests -k opencl; \
	else \
		echo "== no usable PoCL here, OpenCL tests ran on one device only:"; cat .venv/pocl-probe.txt; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info
