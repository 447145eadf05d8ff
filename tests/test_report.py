"""--report PATH.html: the job's page through the real `nstvid` command on a small tree (two image
sizes, bad files, a short clip), in a headless Chromium, after a SIGTERM, for single files and the
Python API, and at 40,000 files."""
from __future__ import annotations

import base64
import html.parser
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import CONTENT, PAN, ROOT, STYLE, clip, command, nstvid, nstvid_env

# The tree's run is shared by the tests of this module: one worker takes them all.
pytestmark = pytest.mark.xdist_group("report")
TINY = ["--size", "32", "--scales", "1", "--iterations", "2", "--frame-iterations", "1", "--precision", "fp32",
        "--log-format", "plain"]
FAILURES_RGB = (255, 214, 214)  # page.py's .failures background


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return nstvid_env(tmp_path_factory.mktemp("cache"))


def cat(width: int, height: int) -> np.ndarray:
    return cv2.resize(cv2.imread(str(CONTENT)), (width, height), interpolation=cv2.INTER_AREA)


class Page(html.parser.HTMLParser):
    """The parts of a report page the tests look at: sections in order, file rows (cells and
    images), video articles (data- attributes and images), failures' items, the state line.
    Raises on a closing tag that closes nothing open (html.parser itself is lenient)."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "line", "polyline"}

    def __init__(self, text: str):
        super().__init__()
        self.stack: list[str] = []
        self.sections: list[str] = []
        self.rows: list[dict] = []
        self.videos: list[dict] = []
        self.failures: list[str] = []
        self.state = ""
        self.images: list[dict] = []
        self._cell: list[str] | None = None
        self._text: list[str] | None = None
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed: {self.stack}"

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        elif tag == "tr" and (a.get("class") or "").startswith("s-"):
            self.rows.append({"class": a["class"], "cells": [], "images": []})
        elif tag == "td" and self.rows and "tbody" in self.stack and self._in("files"):
            self._cell = []
        elif tag == "article":
            self.videos.append({**a, "images": []})
        elif tag == "li" and self._in("failures"):
            self._text = []
        elif tag == "span" and a.get("id") == "state":
            self._text = []
        elif tag == "img":
            self.images.append(a)
            if self._cell is not None:
                self.rows[-1]["images"].append(a)
            elif "article" in self.stack:
                self.videos[-1]["images"].append(a)

    def _in(self, section: str) -> bool:
        return bool(self.sections) and self.sections[-1] == section and "section" in self.stack

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag == "td" and self._cell is not None:
            self.rows[-1]["cells"].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "li" and self._text is not None:
            self.failures.append("".join(self._text))
            self._text = None
        elif tag == "span" and self._text is not None and not self.state:
            self.state = "".join(self._text)
            self._text = None

    def handle_data(self, data):
        for part in (self._cell, self._text):
            if part is not None:
                part.append(data)

    def by_file(self) -> dict[str, dict]:
        """{file as shown: {status, seconds, retries, error, images}}."""
        return {r["cells"][2]: dict(status=r["cells"][3], seconds=float(r["cells"][4]), retries=int(r["cells"][5]),
                                    error=r["cells"][6], images=r["images"]) for r in self.rows}


def decoded(src: str, page: Path) -> np.ndarray:
    """An <img> src of the page (data: URI, or a file beside it) decoded."""
    if src.startswith("data:image/jpeg;base64,"):
        data = base64.b64decode(src.split(",", 1)[1])
    else:
        data = (page.parent / src).read_bytes()
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None, src[:80]
    return picture


def aspect(shape) -> float:
    return shape[1] / shape[0]


# ------------------------------------------------------------------------------------------------
# A tree: two image sizes, two bad files, a short clip, run once for the module.


@pytest.fixture(scope="module")
def job(tmp_path_factory, env):
    base = tmp_path_factory.mktemp("report")
    src = base / "in"
    src.mkdir()
    cv2.imwrite(str(src / "wide.png"), cat(120, 80))
    (src / "sub").mkdir()
    cv2.imwrite(str(src / "sub" / "tall & <odd>.jpg"), cat(48, 96))  # escaped on the page
    (src / "notes.jpg").write_text("shopping list\n")
    (src / "empty.png").write_bytes(b"")
    clip(src / "clips", PAN, 6, "pan.mp4", audio=False)
    page = base / "report.html"
    r = nstvid(env, src, "--style", STYLE, "-o", base / "out", "--report", page, *TINY)
    text = page.read_text()
    return dict(src=src, out=base / "out", page=page, run=r, text=text, parsed=Page(text))


def test_page_names_every_file_with_its_status_and_error(job):
    assert job["run"].returncode == 1, job["run"].stdout + job["run"].stderr  # the bad files
    parsed = job["parsed"]
    assert parsed.sections[:2] == ["failures", "job"] and parsed.sections[-1] == "files", parsed.sections
    assert "videos" in parsed.sections
    files = parsed.by_file()
    assert set(files) == {"wide.png", "sub/tall & <odd>.jpg", "notes.jpg", "empty.png", "clips/pan.mp4"}
    assert "tall &amp; &lt;odd&gt;.jpg" in job["text"] and "<odd>" not in job["text"]
    for name in ("wide.png", "sub/tall & <odd>.jpg", "clips/pan.mp4"):
        assert files[name]["status"] == "done" and files[name]["seconds"] > 0 and files[name]["error"] == "", name
    assert files["notes.jpg"]["status"] == "failed" and "not an image" in files["notes.jpg"]["error"]
    assert files["empty.png"]["status"] == "failed" and "empty file" in files["empty.png"]["error"]
    assert sorted(parsed.failures) == sorted(f"{n}: {files[n]['error']}" for n in ("notes.jpg", "empty.png"))
    assert parsed.state == "Finished with failures"
    for words in ("--report", "starry_night.jpg", "Started", "Ended", "Device(s)", "Engine", "Workers",
                  "3 done, 0 skipped, 2 failed"):
        assert words in job["text"], words
    assert "<script" not in job["text"] and "http://" not in job["text"].replace('xmlns="http://www.w3.org', "")


def test_thumbnails_decode_with_the_right_aspect(job):
    files = job["parsed"].by_file()
    for name, size in (("wide.png", (80, 120)), ("sub/tall & <odd>.jpg", (96, 48))):
        thumb_in, thumb_out = (decoded(i["src"], job["page"]) for i in files[name]["images"])
        assert abs(aspect(thumb_in.shape) - aspect(size)) < 0.05, name
        out = cv2.imread(str(job["out"] / Path(name).with_suffix(".png")))
        assert thumb_out.shape[:2] == out.shape[:2]  # a 32 px output is its own thumbnail
        for shown in files[name]["images"]:
            assert abs(int(shown["width"]) / int(shown["height"]) - aspect(size)) < 0.05, shown
    assert all(f["images"] == [] for f in files.values() if f["status"] == "failed")
    (video,) = job["parsed"].videos
    frames = [decoded(i["src"], job["page"]) for i in video["images"]]
    assert len(frames) == 6  # three frames, input over output
    assert all(abs(aspect(f.shape) - 16 / 9) < 0.1 for f in frames)
    style = next(i for i in job["parsed"].images if i.get("alt") == "starry_night.jpg")
    original = cv2.imread(str(STYLE))
    assert abs(aspect(decoded(style["src"], job["page"]).shape) - aspect(original.shape)) < 0.03


def test_video_e_warp_is_the_evals_own(job):
    """The page's E_warp per sampled pair is `nstvid-eval temporal`'s for those pairs."""
    from nstvid.pipeline.api import flicker

    (video,) = job["parsed"].videos
    pairs = [int(k) for k in video["data-pairs"].split(",")]
    page_values = [float(v) for v in video["data-e-warp"].split(",")]
    (measured,) = flicker(job["src"] / "clips" / "pan.mp4", [job["out"] / "clips" / "pan.mp4"])
    assert pairs == [1, 2, 3, 4, 5]  # a 6-frame clip: every pair is in the sample
    assert page_values == pytest.approx([measured["pairs"][k - 1] for k in pairs], rel=1e-6)
    assert len(video["data-input-e-warp"].split(",")) == len(pairs)
    assert "6 frames" in job["text"] and "<svg" in job["text"] and "<polyline" in job["text"]


@pytest.fixture(scope="module")
def browser():
    sys.path.insert(0, str(ROOT / "bench"))  # bench/browser.py: headless Chromium, shared with bench/
    from browser import Unavailable, chromium

    try:
        return chromium()
    except Unavailable as e:
        pytest.skip(f"no headless browser: {e}")


def test_page_renders_in_chromium_failures_first_without_console_errors(job, browser, tmp_path):
    from browser import screenshot

    # The capture itself works: a page that logs an error is caught.
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><body><script>console.error("control-marker")</script></body></html>')
    assert any("control-marker" in line for line in screenshot(browser, control, tmp_path / "control.png"))
    shot = tmp_path / "page.png"
    console = screenshot(browser, job["page"], shot, 1280, 800)
    assert console == [], console
    picture = cv2.imread(str(shot))[..., ::-1]
    top = picture[:300]  # the first screen's top: state line, then the failures
    pink = np.all(np.abs(top.astype(int) - FAILURES_RGB) <= 2, axis=-1)
    assert pink.mean() > 0.05, f"failures colour covers {pink.mean():.1%} of the top 300 px"
    rows = np.nonzero(pink.any(axis=1))[0]
    assert rows.min() < 150, "the failures section starts below the page's header"


def test_sigterm_leaves_a_page_that_says_interrupted(tmp_path, env):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        cv2.imwrite(str(src / f"cat{i}.png"), cat(96 + 8 * i, 64))
    (src / "bad.png").write_text("not a picture\n")  # fails in the plan, before any work: the page appears
    page = tmp_path / "r.html"
    # Stopped before the first file or after it: the signal comes within milliseconds of the page.
    slow = ["--size", "32", "--scales", "1", "--iterations", "3", "--precision", "fp32", "--log-format", "plain",
            "--batch", "1"]
    proc = subprocess.Popen(command(src, "--style", STYLE, "-o", tmp_path / "out", "--report", page, *slow),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not page.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert page.exists() and proc.poll() is None, proc.communicate()
        running = Page(page.read_text())
        assert running.state.startswith("Running: last updated"), running.state
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, stdout + stderr
    final = Page(page.read_text())
    assert final.state.startswith("Interrupted (exit 143)"), final.state
    files = final.by_file()
    assert len(files) == 7 and files["bad.png"]["status"] == "failed"
    pending = [f for f in files.values() if f["status"] == "pending"]
    assert pending and all(f["error"].startswith(("not started: interrupted", "interrupted")) for f in pending)
    assert not list(tmp_path.glob(".r.html.*.part"))  # written atomically: no temp file left


def test_single_files_and_the_python_api(tmp_path, env):
    """A single image (the command) or video (the API) takes --report; the API's outcome carries the
    summary, and nstvid.write_report writes it again as JSON. A report name of another kind: exit 2."""
    import nstvid as package

    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cat(80, 60))
    r = nstvid(env, photo, "--style", STYLE, "-o", tmp_path / "photo_out.png", "--report", tmp_path / "one.html",
               *TINY)
    assert r.returncode == 0, r.stdout + r.stderr
    one = Page((tmp_path / "one.html").read_text())
    assert one.state == "Finished" and one.by_file()["photo.png"]["status"] == "done"
    with pytest.raises(package.UsageError, match=r"r\.txt: the extension picks the format: \.json or \.html$"):
        package.load_job(photo, STYLE, report=tmp_path / "r.txt")  # the command exits 2 with this line
    video = clip(tmp_path, PAN, 3, "clip.mp4", audio=False)
    outcome = package.stylise(video, style=STYLE, output=tmp_path / "clip_out.mp4", size=32, scales=1, iterations=1,
                              frame_iterations=1, precision="fp32", report=tmp_path / "v.html")
    assert outcome.frames == 3 and outcome.summary.done == 1 and outcome.summary.records[0]["kind"] == "video"
    page = Page((tmp_path / "v.html").read_text())
    assert page.by_file()["clip.mp4"]["status"] == "done" and len(page.videos) == 1
    assert page.videos[0]["data-pairs"] == "1,2" and "(Python API)" in (tmp_path / "v.html").read_text()
    package.write_report(outcome, tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["done"] == 1 and again["files"] == outcome.summary.records and again["input"] == str(tmp_path)


def test_forty_thousand_files_page_stays_small(tmp_path):
    """At 40,000 files thumbnails go to PATH_files/ (lazy), rows to pages of 500, and the first page,
    failures first, stays well under a few MB."""
    from nstvid.pipeline.report import JobSummary, ReportPage

    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for i in range(3):
        cv2.imwrite(str(pictures / f"p{i}.png"), cat(60 + 20 * i, 40))
    records = []
    for i in range(40_000):
        status = "failed" if i % 1000 == 7 else "done" if i < 3 else "pending"
        path = pictures / f"p{i}.png" if i < 3 else tmp_path / "in" / f"d{i // 100}" / f"photo_{i:05d}.jpg"
        records.append({"path": str(path), "status": status, "error": "corrupt <JPEG>" if status == "failed" else "",
                        "seconds": 1.5, "output": str(path) if i < 3 else "", "kind": "image"})
    summary = JobSummary(tmp_path / "out", done=3, failed=40, pending=40_000 - 43, records=records)
    page = tmp_path / "big.html"
    t0 = time.perf_counter()
    ReportPage(page).write(summary)
    seconds = time.perf_counter() - t0
    size = page.stat().st_size
    assert size < 1_000_000, size
    assert len(list((tmp_path / "big_files").glob("rows-*.html"))) == 79
    parsed = Page(page.read_text())
    assert parsed.sections[0] == "failures" and len(parsed.failures) == 40 and "&lt;JPEG&gt;" in page.read_text()
    assert len(parsed.rows) == 500
    shown = [i for r in parsed.rows for i in r["images"]]
    assert len(shown) == 6 and all(i["loading"] == "lazy" and i["src"].startswith("big_files/t/") for i in shown)
    assert all(abs(aspect(decoded(i["src"], page).shape) - int(i["width"]) / int(i["height"])) < 0.05 for i in shown)
    last = Page((tmp_path / "big_files" / "rows-80.html").read_text())
    assert len(last.rows) == 500 and last.sections[0] == "failures"
    assert seconds < 30, seconds


def test_each_state_says_what_happened_and_escapes_what_it_shows(tmp_path):
    """Running, stopped by --max-runtime, interrupted, finished: the state line says which; paths
    and errors are escaped wherever they appear."""
    from nstvid.pipeline.report import JobSummary, write_report

    record = {"path": str(tmp_path / "a<b>.png"), "status": "failed", "error": 'bad "quote" & <tag>',
              "seconds": 0.0, "output": "", "kind": "image"}
    cases = {"Running: last updated": {}, "Stopped at --max-runtime": dict(stopped_early=True),
             "Interrupted (exit 130)": dict(interrupted=True, exit_code=130),
             "Finished with failures": dict(ended_at=time.time())}
    for expected, fields in cases.items():
        summary = JobSummary(tmp_path / "out", failed=1, records=[dict(record)], **fields)
        write_report(summary, tmp_path / "r.html")
        text = (tmp_path / "r.html").read_text()
        parsed = Page(text)
        assert parsed.state.startswith(expected), (expected, parsed.state)
        assert "<tag>" not in text and "a<b>" not in text and "&lt;tag&gt;" in text
        assert parsed.failures == [f"{record['path']}: {record['error']}"]
