# The two commands a newcomer needs: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format clean

run: $(VENV)/.installed-run
	@bin/run

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_ARGS)

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A stamp per extra: reinstall only when pyproject.toml changes. The build backend is chatty,
# so its output goes to a log that is shown only when the install fails.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	@echo "Installing the portal into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet -e . > $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo "Installing the portal and its test tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet -e '.[dev]' > $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	@touch $@ $(VENV)/.installed-run

clean:
	rm -rf $(VENV) var
