# Two entry points: `make repro` runs the pipeline, `make test` runs the tests.
# Both create .venv (Python 3.11) and install the project into it when needed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test install lint clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

repro: $(STAMP) espeak speech-deps hrtf-deps
	dvc repro

test: $(STAMP) test-deps espeak speech-deps hrtf-deps
	python -m pytest

# tests/test_plots_offline.py draws the plots page in headless Chromium (Debian's package).
.PHONY: test-deps
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
test-deps:
	command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)

# The conditions stage (and its tests) speaks with espeak-ng (Debian's package).
.PHONY: espeak
espeak:
	command -v espeak-ng >/dev/null || ($(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng)

# The speech stage's talkers are recorded words from two KDE games' data (Debian's packages, GPL).
.PHONY: speech-deps
SPEECH_PACKAGES := ktuberling-data klettres-data
speech-deps:
	test -d /usr/share/ktuberling/sounds -a -d /usr/share/klettres || ($(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SPEECH_PACKAGES))

# Binaural rooms (simulate.array.kind: hrtf) use a measured head: the MIT KEMAR HRIRs that Debian's
# libmysofa1 ships (/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa, params.yaml's default).
.PHONY: hrtf-deps
hrtf-deps:
	test -f /usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa || ($(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libmysofa1)

lint: $(STAMP)
	ruff check src stages tests benchmarks
	ruff format --check src stages tests benchmarks

clean-venv:
	rm -rf $(VENV)
