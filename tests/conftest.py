"""Shared fixtures: the real `nstvid` command on real sample media, with a private style cache."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_media"
CONTENT = SAMPLES / "chelsea.png"
STYLE = SAMPLES / "starry_night.jpg"
# Small and quick: 2 CPU cores run the whole suite.
TINY = ["--size", "64", "--scales", "1", "--iterations", "3"]


def nstvid_exe() -> str:
    exe = Path(sys.executable).with_name("nstvid")
    return str(exe) if exe.exists() else shutil.which("nstvid") or "nstvid"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("style-cache")


@pytest.fixture
def run_nstvid(cache_dir):
    """Run the installed `nstvid` command; returns CompletedProcess (text)."""

    def run(*args, env=None, timeout=600, **kwargs):
        full_env = {**os.environ, "NSTVID_CACHE_DIR": str(cache_dir), **(env or {})}
        return subprocess.run([nstvid_exe(), *map(str, args)], capture_output=True, text=True,
                              env=full_env, timeout=timeout, **kwargs)

    return run
