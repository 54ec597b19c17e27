# facestream: `make demo` runs the whole pipeline on a real video; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# mediapipe's wheel requires opencv-contrib-python, which would overwrite the cv2 of
# opencv-python-headless; it is installed without dependencies (pyproject lists what it needs).
MEDIAPIPE := mediapipe==1.2.2

.PHONY: install demo test bench up down clean

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

test: install
	$(BIN)/python -m pytest

up: install
	$(BIN)/facestream up

down:
	$(BIN)/facestream down

clean:
	rm -rf $(VENV) .facestream .pytest_cache
