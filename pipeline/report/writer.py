"""Writing a job's report: JSON (one record per file, as ever) or the HTML page (page.py), chosen
by the file's extension, always atomically (media.images.atomic_write_bytes).

The page is rewritten as the job goes: once its plan is made, then every EVERY_FILES finished files
or EVERY_SECONDS, and once more at the end; a job stopped by --max-runtime or a signal leaves a
page that says so (a kill -9 leaves the last one, saying "running" and when it was written).
Thumbnails are made once per file and kept: as data: URIs while the job has at most EMBED_LIMIT
files (one self-contained page), beyond that as JPEG files in PATH_files/ (named by the picture's
path, size and mtime, so that a rerun reuses them), with the rows split into pages of
ROWS_PER_PAGE: a 40,000-file job's page stays a few hundred kB.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

from ..errors import NstvidError, OutputError, UsageError
from ..files import atomic_write_bytes
from ..media.images import header_size
from ..media.video import FrameSpan, probe
from ..progress import Callback, Event, FileDone, Message, Totals
from .page import Asset, document, failures, header, job_section, left_out, pager, row, rows_table, video_article
from .pictures import FRAME, THUMB, VideoSample, thumbnail, video_sample
from .summary import JobSummary

REPORT_VERSION = 1
FORMATS = (".json", ".html")
EMBED_LIMIT = 100  # files; more: thumbnails beside the page, in PATH_files/
ROWS_PER_PAGE = 500
EVERY_FILES = 20
EVERY_SECONDS = 60.0


def check_report_path(path: str | Path) -> None:
    """Refuse a report name whose extension picks no format (before any work)."""
    if Path(path).suffix.lower() not in FORMATS:
        raise UsageError(f"--report {path}: the extension picks the format: .json or .html")


def write_json(path: Path, summary: JobSummary, input_dir: Path) -> None:
    """The JSON report: the summary's counts and one record per file, written atomically."""
    data = {"version": REPORT_VERSION, "input": str(input_dir), "output": str(summary.output),
            "done": summary.done, "skipped": summary.skipped, "failed": summary.failed,
            "pending": summary.pending, "interrupted": summary.interrupted,
            "stopped_early": summary.stopped_early, "seconds": round(summary.seconds, 3),
            "exit_code": summary.exit_code, "left_out": summary.left_out, "files": summary.records}
    _make_folder(path)
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(path, f"cannot create the report's folder ({e.strerror or e})") from None


def write_report(summary: JobSummary, path: str | Path, input_dir: str | Path | None = None) -> None:
    """Write summary's report to path: .json or .html by the extension (nstvid.write_report).

    input_dir: the folder the records' paths are under (default: the job's input, for a single file
    its folder). Raises UsageError for another extension, OutputError when it cannot be written."""
    path = Path(path)
    check_report_path(path)
    if path.suffix.lower() == ".html":
        ReportPage(path).write(summary)
        return
    if input_dir is None:
        job = summary.job
        input_dir = (job.input if job.kind == "folder" else job.input.parent) if job else Path(".")
    write_json(path, summary, Path(input_dir))


class ReportPage:
    """One job's HTML report: update() as files finish (rewritten when due), write() at the end.

    span: a single video job's frames of its input (--start/--duration), for the E_warp pairs."""

    def __init__(self, path: str | Path, *, embed_limit: int = EMBED_LIMIT, rows_per_page: int = ROWS_PER_PAGE,
                 every_files: int = EVERY_FILES, every_seconds: float = EVERY_SECONDS, span: FrameSpan | None = None):
        self.path = Path(path)
        self.files_dir = self.path.with_name(self.path.stem + "_files")
        self.embed_limit, self.rows_per_page = embed_limit, rows_per_page
        self.every_files, self.every_seconds = every_files, every_seconds
        self.span = span
        self.assets: dict[tuple, Asset | None] = {}
        self.videos: dict[str, tuple[VideoSample, list[tuple[Asset, Asset]]]] = {}
        self.last_write = 0.0
        self.finished_at_last = -1

    # -- when

    def watch(self, progress: Callback, summary: JobSummary) -> Callback:
        """progress, with the page rewritten first when the plan is made (Totals: every file has its
        row, so a job whose first file is a long video has a page from the start), then when due
        after a FileDone; a failed rewrite is a warning (the job goes on, the final write tries
        again). Nothing is written before Totals: the skips the plan reports come before it, and a
        plan with nothing to do (no Totals) leaves the last page as it was (folder/run.py)."""
        planned = False

        def watched(event: Event) -> None:
            nonlocal planned
            progress(event)
            planned = planned or isinstance(event, Totals)
            if planned and isinstance(event, (FileDone, Totals)):
                try:
                    self.update(summary)
                except OutputError as e:
                    progress(Message(f"{e}; the report is written again later", level="warning"))
                except Exception as e:  # noqa: BLE001 - a report page must never end the job it reports on
                    progress(Message(f"report {self.path}: not updated ({type(e).__name__}: {e}); "
                                     "written again later", level="warning"))

        return watched

    def update(self, summary: JobSummary) -> bool:
        """Rewrite the page if EVERY_FILES files finished or EVERY_SECONDS passed since the last
        write (the first call always writes); returns whether it wrote."""
        finished = summary.done + summary.failed + summary.skipped
        due = (self.finished_at_last < 0 or finished - self.finished_at_last >= self.every_files
               or (finished != self.finished_at_last and time.monotonic() - self.last_write >= self.every_seconds))
        if due:
            self.write(summary)
        return due

    # -- what

    def write(self, summary: JobSummary) -> None:
        """Make what is new (thumbnails, video samples) and write the page(s) atomically."""
        t0 = time.perf_counter()
        _make_folder(self.path)
        embed = len(summary.records) <= self.embed_limit
        job = summary.job
        base = (job.input if job.kind == "folder" else job.input.parent) if job else None
        styles = [(s, self._asset(("style", s), s, embed, FRAME)) for s in
                  (summary.job.settings.styles if summary.job else ())]
        rows = [self._row(r, base, embed) for r in summary.records]
        pages = max(1, -(-len(rows) // self.rows_per_page))
        prefix = self.files_dir.name + "/"
        videos = "".join(video_article(r, *self._video(r, embed), base, prefix) for r in summary.records
                         if r.get("kind") == "video" and r.get("status") in ("done", "skipped"))
        videos = f'<section id="videos"><h2>Videos</h2>{videos}</section>' if videos else ""
        now = time.time()
        top = header(summary, now) + failures(summary.records, base) + left_out(summary.left_out)

        def to_page(n: int, here_main: bool) -> str:
            if n == 1:
                return self.path.name if here_main else "../" + self.path.name
            return (prefix if here_main else "") + f"rows-{n}.html"

        for n in range(2, pages + 1):
            chunk = [r.replace(f'src="{prefix}', 'src="') for r in rows[(n - 1) * self.rows_per_page:
                                                                         n * self.rows_per_page]]
            nav = pager(pages, n, lambda k: to_page(k, False))
            body = top.replace(f'src="{prefix}', 'src="') + rows_table(chunk, len(rows), nav)
            self._put(self.files_dir / f"rows-{n}.html", document(f"nstvid report, rows page {n}", body))
        nav = pager(pages, 1, lambda k: to_page(k, True))
        body = (top + job_section(summary, styles, prefix) + videos
                + rows_table(rows[:self.rows_per_page], len(rows), nav))
        title = f"nstvid report: {summary.job.input if summary.job else summary.output}"
        self._put(self.path, document(title, body))
        self.last_write = time.monotonic()
        self.finished_at_last = summary.done + summary.failed + summary.skipped
        summary.report_seconds += time.perf_counter() - t0

    def _put(self, path: Path, text: str) -> None:
        if path.parent != self.path.parent:
            _make_folder(path)
        atomic_write_bytes(path, text.encode())

    def _row(self, record: dict, base: Path | None, embed: bool) -> str:
        shown = record.get("status") in ("done", "skipped")  # failed inputs may be FIFOs, half files...
        thumbs = (self._asset(("in", record["path"]), record["path"], embed) if shown else None,
                  self._asset(("out", record["output"]), record["output"], embed)
                  if shown and record.get("kind") != "video" and record.get("output") else None)
        if shown and record.get("kind") == "video":
            frames = self._video(record, embed)[1]
            thumbs = (frames[0][0], frames[0][1]) if frames else (None, None)
        return row(record, thumbs, base, self.files_dir.name + "/")

    def _asset(self, key: tuple, path: str, embed: bool, long_side: int = THUMB) -> Asset | None:
        """A thumbnail of the image file at path, made once per key and mode."""
        key = (*key, embed)
        if key not in self.assets:
            stored = None if embed else self._stored(path, long_side)
            if stored is not None:
                self.assets[key] = stored
            else:
                made = thumbnail(path, long_side)
                self.assets[key] = None if made is None else self._keep(made[0], made[1], embed, path, long_side)
        return self.assets[key]

    def _name(self, path: str, long_side: int, which: str = "") -> str:
        """A thumbnail's file name, from its source's path, size and mtime: a rerun finds its own."""
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = ""
        digest = hashlib.sha1(f"{path}\0{stamp}\0{long_side}\0{which}".encode()).hexdigest()[:20]
        return f"t/{digest}.jpg"

    def _stored(self, path: str, long_side: int) -> Asset | None:
        name = self._name(path, long_side)
        size = header_size(self.files_dir / name) if (self.files_dir / name).is_file() else None
        return Asset(name, size) if size else None

    def _keep(self, data: bytes, size: tuple[int, int], embed: bool, path: str, long_side: int,
              which: str = "") -> Asset:
        if embed:
            return Asset("data:image/jpeg;base64," + base64.b64encode(data).decode(), size)
        name = self._name(path, long_side, which)
        _make_folder(self.files_dir / name)
        atomic_write_bytes(self.files_dir / name, data)
        return Asset(name, size)

    def _video(self, record: dict, embed: bool) -> tuple[VideoSample, list[tuple[Asset, Asset]]]:
        """The video's sample (three frames, E_warp at sampled pairs), measured once."""
        key = f"{record['path']}\0{record['output']}\0{embed}"
        if key not in self.videos:
            try:
                count = probe(record["output"]).frame_count
            except (NstvidError, OSError) as e:  # gone or damaged since: the page says so
                self.videos[key] = (VideoSample(0, (0, 0), error=str(e)), [])
                return self.videos[key]
            sample = video_sample(record["path"], record["output"], count, self.span)
            frames = []
            for k, (inp, out) in enumerate(sample.frames):
                pair = []
                for which, data in (("in", inp), ("out", out)):
                    size = _jpeg_size(data)
                    pair.append(self._keep(data, size, embed, record["output"], FRAME, f"{which}{k}"))
                frames.append((pair[0], pair[1]))
            self.videos[key] = (sample, frames)
        return self.videos[key]


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(h, w) of a JPEG from its start-of-frame segment, walking the segments before it."""
    at = 2
    while at + 9 < len(data):
        marker, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xC3:
            return int.from_bytes(data[at + 5:at + 7], "big"), int.from_bytes(data[at + 7:at + 9], "big")
        at += 2 + length
    return (0, 0)
