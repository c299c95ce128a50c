# Two entry points for a fresh Debian machine with nothing but Python: `make test` and `make demo`.
# Both create .venv, install the package with its test extras, and apt-get what is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test demo bench bench-journal bench-mixed system-deps venv clean

test: $(STAMP)
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/python -m josev_bridge.demo

bench: $(STAMP)
	$(BIN)/python bench/roundtrip.py

bench-journal: $(STAMP)
	$(BIN)/python bench/journal.py

bench-mixed: $(STAMP)
	$(BIN)/python bench/mixed_load.py

venv: $(STAMP)

# mosquitto for the real broker the tests and the demo start; libsystemd-dev and pkg-config to build
# systemd-python; faketime (libfaketime) for the board-clock-step test. Installed only when missing,
# so a prepared machine does not need root.
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	pkg-config --exists libsystemd 2>/dev/null || missing="$$missing libsystemd-dev"; \
	ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing="$$missing faketime"; \
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

clean:
	rm -rf $(VENV) build *.egg-info
