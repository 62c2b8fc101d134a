# The two commands of the README's quick start:
#   make demo   set up a virtual environment and run an example site (SQLite, no root needed)
#   make test   install everything the tests need (Debian packages too) and run the whole suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
DEMO   ?= demo

.PHONY: demo test venv test-deps lint man messages screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e . --group tests --group lint 2>/dev/null || \
	  $(PY) -m pip install -q -e . pytest pytest-randomly hypothesis time-machine trustme dkimpy pynacl authres checkdmarc openapi-spec-validator schemathesis mailpit-api-client==1.0.0 oidc-provider-mock ansible-core playwright axe-playwright-python build hatchling ruff mypy import-linter
	touch $@

venv: $(VENV)/.installed

demo: venv
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" sh scripts/demo.sh "$(DEMO)"

test-deps: venv
	./scripts/install-test-deps.sh

test: test-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check mailprov tests bench
	$(VENV)/bin/ruff format --check mailprov tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The portal's Russian catalogue: extract the messages of the pages and their Python, merge them
# into the .po (translate what is new there), compile the .mo (both are committed and shipped).
LOCALE = mailprov/web/portal/locale
messages: venv
	$(VENV)/bin/pybabel extract -F babel.cfg -k N_ --no-location --sort-output --project mailprov \
	  --copyright-holder "mailprov contributors" -o $(LOCALE)/messages.pot .
	$(VENV)/bin/pybabel update -i $(LOCALE)/messages.pot -d $(LOCALE) -D messages --width 100 --ignore-obsolete
	$(VENV)/bin/pybabel compile -d $(LOCALE) -D messages --statistics

# The README's portal screenshots: the browser tests write them only when asked (SQLite run).
screenshots: test-deps
	MAILPROV_TEST_SCREENSHOTS=1 $(PY) -m pytest -q -p no:randomly tests/web/portal -k "not postgresql"

man: venv
	$(PY) -m mailprov.cli.docs man --out build/man

clean:
	rm -rf $(VENV) $(DEMO) dist build .pytest_cache
