# The front door. `make run` serves on this machine; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test venv check-queue local-cluster clean

run: $(STAMP)
	scripts/run

test: $(STAMP)
	scripts/test $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

check-queue: $(STAMP)
	scripts/check_queue

local-cluster: $(STAMP)
	scripts/local-cluster $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
