# Two entry points for a fresh Debian machine with nothing but Python: `make test` and `make demo`.
# Both create .venv, install the package with its test extras, and apt-get what is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test demo bench bench-journal bench-mixed bench-page system-deps venv clean

# Two workers, a test file each at a time (module fixtures stay in one process): the suite waits on
# brokers, ptys and daemons more than it computes, and every test must pass with both cores busy anyway.
test: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile

demo: $(STAMP)
	$(BIN)/python -m josev_bridge.demo

bench: $(STAMP)
	$(BIN)/python bench/roundtrip.py

bench-journal: $(STAMP)
	$(BIN)/python bench/journal.py

bench-mixed: $(STAMP)
	$(BIN)/python bench/mixed_load.py

bench-page: $(STAMP)
	$(BIN)/python bench/status_page.py

venv: $(STAMP)

# mosquitto for the real broker the tests and the demo start; libsystemd-dev and pkg-config to build
# systemd-python; for the Debian package's tests (tests/install): lintian, systemd (systemd-analyze
# verify, systemd-sysusers) and Debian's python3, which runs the installed package.
# chromium and chromium-driver for the status page's browser tests (selenium drives Debian's, never a
# downloaded browser); faketime (libfaketime) for the board-clock-step test. Installed only when
# missing, so a prepared machine does not need root.
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	pkg-config --exists libsystemd 2>/dev/null || missing="$$missing libsystemd-dev"; \
	ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing="$$missing faketime"; \
	command -v lintian >/dev/null 2>&1 || missing="$$missing lintian"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v strace >/dev/null 2>&1 || missing="$$missing strace"; \
	[ -x /usr/bin/python3 ] || missing="$$missing python3"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml | system-deps
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# --- Debian package (issue 13; README "Install on a board") -------------------------------------
# deb: josev-bridge_<version>_{amd64,arm64,armhf}.deb in build/deb from packaging/requirements.lock,
# then lintian (no errors). lock: re-resolve pyproject's dependencies into the lock files (network).
.PHONY: deb lock
deb: $(STAMP)
	rm -f build/deb/josev-bridge_*.deb
	$(BIN)/python packaging/build_deb.py build --out build/deb
	lintian --no-cfg --fail-on error build/deb/josev-bridge_*.deb

lock: $(STAMP)
	$(BIN)/python packaging/build_deb.py lock

# The suite against the lowest versions pyproject.toml allows (a second venv, build/floors); slow, so
# not part of `make test`: run it when a floor moves. The test tools resolve as usual.
.PHONY: test-floors
test-floors: | system-deps
	rm -rf build/floors && mkdir -p build/floors
	$(PY) -m venv build/floors/venv
	build/floors/venv/bin/pip install -q --upgrade pip
	$(PY) packaging/floors.py > build/floors/constraints.txt
	build/floors/venv/bin/pip install -q -c build/floors/constraints.txt -e '.[test]'
	build/floors/venv/bin/pip list --format=freeze | grep -iE "^(paho-mqtt|jsonschema|rfc3339-validator|pyserial|referencing|rpds-py)=="
	build/floors/venv/bin/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info

# --- Checks (issue 12 item 5); configuration in pyproject.toml ----------------------------------
# lint: ruff (pyflakes, pycodestyle, bugbear, pyupgrade, import order). typecheck: mypy, strict on
# core/ and protocol/. `make test` runs both before the suite (they take about two seconds from a
# cold cache). test-fast: the quick unit tests, on every core: no mosquitto, simulator or daemon,
# and no test marked slow (pyproject.toml's markers say which).
.PHONY: lint typecheck test-fast

test: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check josev_bridge tests bench packaging

typecheck: $(STAMP)
	$(BIN)/mypy

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not e2e and not slow" -n auto
