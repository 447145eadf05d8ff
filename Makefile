# `make demo`: set up .venv and stylise the sample media. `make test`: set up and run the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch 2.14.1 + torchvision 0.29.1 install from this machine's local cache; elsewhere from PyPI.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test setup clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	mkdir -p out
	$(BIN)/nstvid sample_media/chelsea.png --style sample_media/starry_night.jpg \
		-o out/chelsea_starry_night.png --size 384 --overwrite
	$(BIN)/nstvid sample_media/pan.mp4 --style sample_media/starry_night.jpg \
		-o out/pan_starry_night.mp4 --preset fast --overwrite
	@echo "demo outputs are in out/"

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
