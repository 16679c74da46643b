# The two commands a newcomer needs: `make run` (the router, embedded, on http://127.0.0.1:8000) and `make test`.
# Both set everything up themselves: a virtualenv in .venv, the pinned packages, system packages the tests use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: install run test test-unit test-fast lint train bench system-deps clean translations

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing furiwake and its pinned dependencies into $(VENV) (first time: a few minutes)..."
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip==25.3
	$(PY) -m pip install -q --disable-pip-version-check -e ".[ml,dev]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/furiwake run

# Debian packages the test-suite drives for real: docker-compose (validates docker-compose.yml), chromium (the
# Playwright browser test; Playwright's own browser download is never used) and a Japanese font for its pages.
system-deps:
	@missing=""; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	fc-list :lang=ja 2>/dev/null | grep -q . || missing="$$missing fonts-ipafont-gothic"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing and not root:$$missing; their tests will skip (or fail under CI=true)"; fi; \
	fi

# Two phases: the tests that run in-process share the two cores through pytest-xdist; the e2e and browser tests,
# which start gunicorn and Celery processes of their own and time what they see, then run one at a time. (Exit 5 is
# pytest's "nothing selected", for a PYTEST_ARGS that names tests of one phase only.) Both phases serve the one
# model the first trains, kept in a directory that lives as long as this recipe (tests/conftest.py). Each phase
# ends with its slowest tests (--durations), so a suite that creeps past its time budget shows where.
test: $(STAMP) system-deps
	cache=$$(mktemp -d) && trap 'rm -rf "$$cache"' EXIT && export FURIWAKE_TEST_MODEL_CACHE="$$cache" && \
	  { $(PY) -m pytest -n 2 -m "not e2e and not browser" --durations=15 $(PYTEST_ARGS) || [ $$? -eq 5 ]; } && \
	  { $(PY) -m pytest -m "e2e or browser" --durations=15 $(PYTEST_ARGS) || [ $$? -eq 5 ]; }

# The tier that needs no PostgreSQL, Redis, browser or real processes and trains no model (about a minute). The
# marks are derived from the fixtures each test uses (tests/support/marks.py), so `-m unit` tells the truth.
test-unit: $(STAMP) system-deps
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy cli api worker training serving core bench
	$(VENV)/bin/lint-imports

# The pages' words: api/translations/<lang>/LC_MESSAGES/messages.po, with the compiled messages.mo beside it, both
# committed (a fresh clone, the wheel and the Docker image need no build step for them). After changing a message:
# `make translations` extracts every message (babel.cfg; the keywords below are the ones beyond gettext's own),
# merges them into each .po (new ones empty, gone ones dropped), and compiles the .mo files; then fill in the empty
# msgstr lines and run it again. tests/api/test_catalogues.py fails while one is empty or a .mo is stale.
BABEL_KEYWORDS := -k lazy_gettext -k lazy_pgettext:1c,2 -k lazy_ngettext:1,2 -k add_nav_link:2
TRANSLATIONS := api/translations

translations: $(STAMP)
	$(VENV)/bin/pybabel -q extract -F babel.cfg $(BABEL_KEYWORDS) --no-wrap --sort-by-file --add-location=file \
	  --project furiwake -o $(TRANSLATIONS)/messages.pot api
	$(VENV)/bin/pybabel update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) --no-wrap --no-fuzzy-matching \
	  --ignore-obsolete
	$(VENV)/bin/pybabel compile -d $(TRANSLATIONS) --statistics

train: $(STAMP)
	$(VENV)/bin/furiwake train

bench: $(STAMP)
	$(PY) bench/quality.py
	$(PY) bench/predictor.py
	$(PY) bench/retrain.py

clean:
	rm -rf var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
