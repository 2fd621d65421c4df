# Two commands for a newcomer: `make run` and `make test`. Both set up .venv,
# install and migrate first; `make install` is quick when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# Migrating and collecting static files on a developer's machine: DEBUG on unless
# the caller set it (with DEBUG off the settings need DJANGO_SECRET_KEY).
install: export DJANGO_DEBUG ?= true
install: $(STAMP)
	@mkdir -p var/celery/out var/celery/processed var/celery/control
	@$(BIN)/python manage.py migrate --noinput -v 0
	@$(BIN)/python manage.py collectstatic --noinput --clear -v 0

# make run is a developer's server: DEBUG on for itself (production defaults to off),
# and a probe worker with beat embedded (the sweeper) on the filesystem broker
# unless REDIS_URL is set.
run: export DJANGO_DEBUG ?= true
run: install
	@echo "Switchboard on http://127.0.0.1:$(PORT)/ with a probe worker and beat beside it (Ctrl-C stops all)"
	@$(BIN)/celery -A advisor worker -B -Q $${CELERY_DEFAULT_QUEUE:-probes} --loglevel=WARNING --concurrency=4 \
		--without-mingle --without-gossip & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy advisor probes tests bench

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

bench: install
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) var staticfiles .mypy_cache .ruff_cache .pytest_cache
