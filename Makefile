# Fleetgate: `make serve` runs the gateway, `make test` runs every test. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: serve test install build lint bench clean browser

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml setup.py
	$(PY) -m pip install --quiet "Cython==3.3.1" setuptools wheel
	$(PY) -m pip install --quiet --no-build-isolation -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# Compile the Cython twins in place; generated .c files stay out of git.
build: $(STAMP)
	$(PY) setup.py --quiet build_ext --inplace

serve: build
	$(VENV)/bin/fleetgate serve --dev

lint: $(STAMP)
	$(VENV)/bin/ruff check broker _speedups tests bench admin 2>/dev/null || $(VENV)/bin/ruff check broker tests bench

# The web console's tests drive Debian's Chromium (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || \
		{ apt-get update && apt-get install -y --no-install-recommends chromium; }

# The strict variable makes import fail if a compiled module did not load.
test: build browser
	$(VENV)/bin/ruff check .
	FLEETGATE_REQUIRE_EXTENSIONS=1 $(PY) -m pytest -q -p no:cacheprovider
	@echo "== integration tests again on the pure-Python twins =="
	FLEETGATE_NO_EXTENSIONS=1 $(PY) -m pytest -q -p no:cacheprovider tests/integration

# Load scenarios vs mosquitto, the HTTP device API scenarios, then the pure-vs-Cython
# micro-benchmarks (bench/README.md).
bench: build
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || \
		{ apt-get update && apt-get install -y mosquitto && \
		  { systemctl disable --now mosquitto || true; }; }
	@test -f /usr/include/openssl/ssl.h || { apt-get update && apt-get install -y libssl-dev; }
	$(PY) bench/build.py
	$(PY) -m pip install --quiet pytest-benchmark
	$(PY) -m bench.load --scenario all --repeat 3
	@command -v wrk >/dev/null 2>&1 || { apt-get update && apt-get install -y wrk; }
	$(PY) -m bench.http_load --scenario all --repeat 3
	$(PY) -m pytest -p no:cacheprovider bench/bench_codec.py bench/bench_routing.py \
		--benchmark-group-by=group --benchmark-columns=min,median,ops

clean:
	rm -rf build _speedups/*.c _speedups/*.so .pytest_cache
