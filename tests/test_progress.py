"""The CLI's progress display: the whole-job bar on a terminal, counts in JSON lines.

The events are those a folder job on --engine ray sends (no per-iteration events come back from the
workers), handed to the real Reporter with a rich console that records what a terminal would show.
"""
from __future__ import annotations

import io
import json
import time
from contextlib import redirect_stdout

from rich.console import Console

from nstvid.cli import Reporter
from nstvid.pipeline.progress import Estimate, FileDone, FrameDone, Message, Totals


def _events():
    yield Totals(3)
    yield Estimate("2 images, 1 video (4 frames): about 40 s on cpu", 40.0, 3)
    for name in ("a.png", "b.png"):
        yield FileDone(name, "done", 1.0, output=f"out/{name}", worker="127.0.0.1:11", node="127.0.0.1")
    for index in range(4):  # a video's frames, finishing on two workers
        yield FrameDone(index, 4, 0.5, 1.0)
    yield FileDone("c.mp4", "done", 2.0, output="out/c.mp4", worker="127.0.0.1:12", node="127.0.0.1")


def test_terminal_shows_the_whole_job():
    console = Console(record=True, force_terminal=True, width=140, file=io.StringIO())
    with Reporter(console=console) as reporter:
        for event in _events():
            reporter(event)
            time.sleep(0.01)  # rates need time to pass
        # The job bar sits above the unit in hand and counts files; the unit bar counts frames.
        job, unit = reporter.progress.tasks
        assert (job.description, job.completed, job.total) == ("files", 3, 3)
        assert "files/s" in job.fields["info"] and "4 video frames" in job.fields["info"]
        assert job.fields["deadline"] is None  # two files done: the measured speed gives the ETA
        assert (unit.description, unit.completed, unit.total) == ("frames", 4, 4)
        assert "frames/s" in unit.fields["info"]
    shown = console.export_text()
    assert "files" in shown and "3/3" in shown and "done: a.png [127.0.0.1:11]" in shown


def test_json_lines_count_the_job():
    out = io.StringIO()
    with redirect_stdout(out), Reporter(log_format="json") as reporter:
        assert reporter.progress is None
        for event in _events():
            reporter(event)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(x["code"] for x in lines), lines
    files = [x for x in lines if "status" in x]
    assert [x["code"] for x in files] == ["file.done"] * 3
    assert [(x["path"], x["files_done"], x["files_total"], x["node"]) for x in files] == [
        ("a.png", 1, 3, "127.0.0.1"), ("b.png", 2, 3, "127.0.0.1"), ("c.mp4", 3, 3, "127.0.0.1")]
    frames = [x for x in lines if "frame" in x]
    assert [x["frame"] for x in frames] == [1, 2, 3, 4] and "frames_per_second" in frames[-1]


def test_a_message_has_its_code_and_fields_in_json_and_only_its_words_in_plain():
    """What a line says as values (Message.fields) sits beside its code in JSON; the plain log
    shows the words alone."""
    message = Message("resuming at frame 13: 12 frames already stylised", code="video.resuming",
                      fields={"from_frame": 13, "done": 12})
    for log_format, expected in (("json", None), ("plain", "nstvid: resuming at frame 13: 12 frames already stylised")):
        out = io.StringIO()
        with redirect_stdout(out), Reporter(log_format=log_format) as reporter:
            reporter(message)
        if expected is None:
            (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
            assert {k: line[k] for k in ("code", "from_frame", "done", "level")} == {
                "code": "video.resuming", "from_frame": 13, "done": 12, "level": "info"}, line
        else:
            assert out.getvalue().strip() == expected
