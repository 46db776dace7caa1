# Quick start:  make apply   (sets up .venv, then qrt apply on the example manifests, embedded runtime)
#               make test    (the whole test suite, with the real old and current IBM clients in their own venvs)
PYTHON ?= python3
VENV := .venv
OLDCLIENT := .venv-oldclient
# The last qiskit-ibm-runtime with the program API, with the pins that make it importable today.
OLDCLIENT_PINS := "qiskit-ibm-runtime==0.11.3" "qiskit-ibm-provider==0.6.3" "qiskit-terra==0.25.1" "numpy<2" "websocket-client<1.9"
NEWCLIENT := .venv-newclient
# The current client of IBM Quantum Platform's v1 API, which qrt serve also speaks.
NEWCLIENT_PINS := "qiskit-ibm-runtime==0.51.0"

.PHONY: apply test lint check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

# Best effort: when it cannot be installed, the old-client tests say so and are skipped.
$(OLDCLIENT)/.installed:
	$(PYTHON) -m venv $(OLDCLIENT)
	$(OLDCLIENT)/bin/pip install -q $(OLDCLIENT_PINS) && touch $@ \
	  || echo "warning: could not install the old qiskit-ibm-runtime client; its tests will be skipped"

# Best effort as well: without it, the current-client tests say so and are skipped.
$(NEWCLIENT)/.installed:
	$(PYTHON) -m venv $(NEWCLIENT)
	$(NEWCLIENT)/bin/pip install -q $(NEWCLIENT_PINS) && touch $@ \
	  || echo "warning: could not install qiskit-ibm-runtime 0.51.0; the current-client tests will be skipped"

apply: $(VENV)/.installed
	$(VENV)/bin/qrt apply --auto-approve

test: $(VENV)/.installed $(OLDCLIENT)/.installed $(NEWCLIENT)/.installed
	QRT_OLDCLIENT_PYTHON=$(CURDIR)/$(OLDCLIENT)/bin/python \
	  QRT_NEWCLIENT_PYTHON=$(CURDIR)/$(NEWCLIENT)/bin/python $(VENV)/bin/pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

check: lint test

clean:
	rm -rf $(VENV) $(OLDCLIENT) $(NEWCLIENT) .qrt
