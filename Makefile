# One task runner for people and CI: `make demo` and `make test` do all set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ASSETS := src/summitcast/web/static/build/.built
APT_STAMP := /var/tmp/summitcast-apt-chromium

.PHONY: demo test lint fmt typecheck assets install browser fonts clean bench serve check lock

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

# Fonts so that slates can draw speaker names in every script (Latin, Cyrillic, Greek,
# Arabic and Hebrew come with DejaVu; these add Devanagari, Ethiopic and CJK, ~7 MB).
FONT_FILES := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc \
  /usr/share/fonts/truetype/lohit-devanagari/Lohit-Devanagari.ttf \
  /usr/share/fonts/truetype/abyssinica/AbyssinicaSIL-Regular.ttf
APT_GET := $(if $(filter 0,$(shell id -u)),apt-get,sudo apt-get)

fonts:
	@for f in $(FONT_FILES); do [ -f $$f ] || missing=1; done; \
	if [ -n "$$missing" ]; then $(APT_GET) update -qq && \
	  $(APT_GET) install -y -qq fonts-lohit-deva fonts-sil-abyssinica fonts-wqy-microhei >/dev/null; fi

# Debian's Chromium for the browser tests; Playwright never downloads a browser here.
browser: fonts
	@[ -x /usr/bin/chromium ] || { $(APT_GET) update -qq && $(APT_GET) install -y -qq chromium >/dev/null; }
	@# pdftotext reads the attendance report's PDF back in the report tests.
	@[ -x /usr/bin/pdftotext ] || { $(APT_GET) update -qq && $(APT_GET) install -y -qq poppler-utils >/dev/null; }
	@# nginx: the edge caches and the balancer of the cluster tests (deploy/, summitcast.cluster).
	@[ -x /usr/sbin/nginx ] || { $(APT_GET) update -qq && $(APT_GET) install -y -qq nginx >/dev/null; }

demo: install assets
	@$(MAKE) --no-print-directory fonts || echo 'warning: slate fonts for non-Latin scripts could not be installed'
	$(BIN)/summitcast demo

serve: install assets
	$(BIN)/summitcast serve

test: install assets browser
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/mypy
	@# The floor plan: [tool.importlinter] in pyproject.toml (tests/test_layers.py shows it bites).
	$(BIN)/lint-imports
	$(BIN)/bandit -c pyproject.toml -r src -q
	@# Known vulnerabilities in requirements.lock; .pip-audit-ignore says why any is accepted.
	$(BIN)/python tools/audit_dependencies.py

typecheck: install
	$(BIN)/mypy

check: lint test

fmt: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# wrk drives benchmarks/heartbeat_path.py (a C load generator costs little of the CPU measured).
bench: install assets browser
	@command -v wrk >/dev/null || { $(APT_GET) update -qq && $(APT_GET) install -y -qq wrk >/dev/null; }
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) node_modules src/summitcast/web/static/build var .pytest_cache .mypy_cache .ruff_cache

# Re-pin every Python dependency to what the current virtualenv holds.
lock:
	(echo "# Pinned versions known to work together; regenerate with: make lock"; \
	 $(BIN)/pip freeze --exclude-editable | grep -v '^summitcast') > requirements.lock
