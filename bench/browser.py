"""A headless Chromium for looking at report pages: its path (installed from Debian's packages
where missing and this is root), a screenshot, and the console messages the page logged.

    exe = chromium()                      # or raises Unavailable(reason)
    errors = screenshot(exe, page, png)   # console lines ("CONSOLE") Chromium logged on stderr
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class Unavailable(Exception):
    """No Chromium here, and none can be installed; str() says why."""


def find() -> str | None:
    return next((found for name in NAMES if (found := shutil.which(name))), None)


def chromium(install: bool = True) -> str:
    """The Chromium executable; where there is none, `apt-get install -y chromium` when root."""
    found = find()
    if found or not install:
        if found:
            return found
        raise Unavailable("no chromium on PATH")
    if not shutil.which("apt-get") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise Unavailable("no chromium on PATH, and apt-get as root is not available to install it")
    for steps in ([["apt-get", "install", "-y", "-q", "chromium"]],
                  [["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]]):
        try:
            if all(subprocess.run(step, capture_output=True, timeout=900,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}).returncode == 0
                   for step in steps) and find():
                return find()
        except (OSError, subprocess.TimeoutExpired):
            pass
    raise Unavailable("no chromium on PATH, and `apt-get install -y chromium` failed (no network or package?)")


def screenshot(exe: str, page: Path, png: Path, width: int = 1280, height: int = 800,
               timeout: float = 120) -> list[str]:
    """Render file `page` headless into `png` (width x height); return the console lines Chromium
    logged (--enable-logging=stderr prints each console message as a line with CONSOLE in it)."""
    with tempfile.TemporaryDirectory(prefix="nstvid-chromium-") as profile:
        r = subprocess.run([exe, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                            "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
                            f"--window-size={width},{height}", f"--screenshot={png}",
                            Path(page).resolve().as_uri()], capture_output=True, text=True, timeout=timeout)
    if not Path(png).is_file():
        raise RuntimeError(f"chromium made no screenshot (exit {r.returncode}): {r.stderr[-2000:]}")
    return [line for line in r.stderr.splitlines() if "CONSOLE" in line]
