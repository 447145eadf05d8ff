# `make demo`: set up .venv and stylise the sample media. `make test`: set up and run the tests.
PY ?= python3
# The Python this project is developed and tested on, and the Dockerfile's base image; PY may be any
# python3 of 3.11 or later (pyproject.toml's requires-python).
PYTHON_VERSION := 3.11
VENV := .venv
BIN := $(VENV)/bin
# torch 2.14.1 + torchvision 0.29.1 install from this machine's local cache; elsewhere from PyPI.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-fp32 test-cluster lint typecheck probe setup clean bench docs-pictures

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# A quick look (about 2.5 minutes on 2 CPU cores in fp32): the photo and the real hand-held clip at
# small sizes, then the clip's flicker (E_warp) against the input's own.
demo: setup
	mkdir -p out
	$(BIN)/nstvid sample_media/chelsea.png --style sample_media/starry_night.jpg \
		-o out/chelsea_starry_night.png --preset fast --size 160 --overwrite
	$(BIN)/nstvid sample_media/realshort.mp4 --style sample_media/starry_night.jpg \
		-o out/realshort_starry_night.mp4 --preset fast --size 128 --frame-iterations 15 --overwrite
	$(BIN)/nstvid-eval temporal sample_media/realshort.mp4 out/realshort_starry_night.mp4
	@echo "demo outputs are in out/"

# One pytest worker per core (tests/conftest.py: one thread each), tests handed out one at a time;
# tests that share a module's state carry an xdist_group mark and stay on one worker, in order.
# The slow Ray tests (marked cluster_slow: a worker or the driver killed with SIGKILL, a second run
# at once, the scan split over workers, the private instance of --ray-address local) are left to
# test-cluster: with them the suite passes 10 minutes on 2 cores.
test: lint typecheck
	$(BIN)/python -m pytest -q -n auto --dist loadgroup --durations=12 -m "not cluster_slow"

# ruff (pyproject.toml [tool.ruff]: pyflakes, pycodestyle at 120 columns, import order, bugbear);
# make test runs it first, so a lint error fails CI.
lint: setup
	$(BIN)/ruff check .

# mypy over pipeline/ and the tests' executor double ([tool.mypy] in pyproject.toml): the executor
# and backend contracts hold on every implementation. It sees the package as installed, nstvid,
# through a link in build/. A cold run takes well under 90 s on 2 cores (README).
typecheck: setup
	mkdir -p build/mypy && ln -sfn ../.. build/mypy/nstvid
	$(BIN)/python -m mypy

# Every Ray test on a private 127.0.0.1 cluster (about 2 minutes on 2 cores), then the Ray probes
# of bench/probe_reliability.sh (a private instance with a stale record present).
test-cluster: setup
	$(BIN)/python -m pytest -q tests/test_cluster.py --durations=5
	bench/probe_reliability.sh --ray

# Each reliability failure of issue 24 and before through the real command: OK/BAD per probe.
probe: setup
	bench/probe_reliability.sh

# The whole suite with --precision fp32 forced on every run (what an AVX2-only CPU runs anyway).
test-fp32: setup
	NSTVID_TEST_PRECISION=fp32 $(BIN)/python -m pytest -q -n auto --dist loadgroup --durations=12 -m "not cluster_slow"

# The README's pictures, each by the real code at today's defaults (bench/docs_pictures.py says
# what each pins): the report page of a sample job (docs/report_page.png, headless Chromium), the
# real clip realshort.mp4 stylised once at --size 192 (docs/video_strip.jpg and the animated
# docs/realshort_starry.gif), then docs/gallery.jpg (bench/gallery.py --size 256). On a CPU the
# clip and the gallery take the longest; --skip-report, --skip-video and --skip-gallery make the
# parts one at a time: make docs-pictures ARGS=--skip-gallery.
docs-pictures: setup
	$(BIN)/python bench/docs_pictures.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
