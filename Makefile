# One task runner for people and CI: `make demo` and `make test` do all set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ASSETS := src/summitcast/web/static/build/.built
APT_STAMP := /var/tmp/summitcast-apt-chromium

.PHONY: demo test lint fmt typecheck assets install browser clean bench serve check lock

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

install: $(STAMP)

$(ASSETS): package.json package-lock.json $(shell find frontend -type f 2>/dev/null)
	npm ci --no-audit --no-fund --loglevel=error
	node frontend/build.mjs
	touch $@

assets: $(ASSETS)

# Debian's Chromium for the browser tests; Playwright never downloads a browser here.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] \
	  || [ ! -f /usr/share/fonts/truetype/lohit-devanagari/Lohit-Devanagari.ttf ] \
	  || [ ! -f /usr/share/fonts/truetype/abyssinica/AbyssinicaSIL-Regular.ttf ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium fonts-lohit-deva fonts-sil-abyssinica fonts-wqy-microhei >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium fonts-lohit-deva fonts-sil-abyssinica fonts-wqy-microhei >/dev/null; fi; \
	fi

demo: install assets
	$(BIN)/summitcast demo

serve: install assets
	$(BIN)/summitcast serve

test: install assets browser
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

typecheck: install
	$(BIN)/mypy

check: lint test

fmt: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: install assets
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) node_modules src/summitcast/web/static/build var .pytest_cache .mypy_cache .ruff_cache

# Re-pin every Python dependency to what the current virtualenv holds.
lock:
	(echo "# Pinned versions known to work together; regenerate with: make lock"; \
	 $(BIN)/pip freeze --exclude-editable | grep -v '^summitcast') > requirements.lock
