# facestream: `make demo` runs the whole pipeline on a real video; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# mediapipe's wheel requires opencv-contrib-python, which would overwrite the cv2 of
# opencv-python-headless; it is installed without dependencies (pyproject lists what it needs).
MEDIAPIPE := mediapipe==1.2.2

.PHONY: install demo test bench chaos browser up down clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps "$(MEDIAPIPE)"
	$(BIN)/facestream models fetch
	touch $@

demo: install
	$(BIN)/facestream demo

# Debian's chromium for the dashboard test (Playwright drives it; no browser download).
browser:
	@test -x /usr/bin/chromium || (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
		|| (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null))

test: install browser
	$(BIN)/python -m pytest

# Performance figures (not part of the tests): bench/results/README.md and *.json.
bench: install
	$(BIN)/python -m bench

# Five minutes of random faults under 50 faces x 30 Hz; its table replaces the chaos section of
# docs/RELIABILITY.md. KAFKA_BOOTSTRAP_SERVERS=<a real Kafka> adds the two-worker faults.
chaos: install
	$(BIN)/facestream chaos

up: install
	$(BIN)/facestream up --all

down:
	$(BIN)/facestream down

clean:
	rm -rf $(VENV) .facestream .pytest_cache
