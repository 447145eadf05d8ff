"""A report as one static HTML page: no script, no network, every path and error escaped.

The page, top to bottom: the job's state and totals, the failures (so that they are on the first
screen whatever the job's size), the job (command line, times, devices, engine and workers, styles
as thumbnails, settings), the videos (three frames, input over output, and E_warp per sampled pair
as an inline SVG plot), then one row per file. Pictures arrive as `Asset`s: a data: URI, or a
path relative to the page's PATH_files/ folder (big jobs, see writer.py), which the page links with
loading="lazy". A job of more rows than one page holds continues on PATH_files/rows-N.html.
"""
from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

from ..settings import RunOptions, Settings
from .pictures import VideoSample
from .summary import JobInfo, JobSummary

FAILURES_SHOWN = 200  # the first screen names these; the rest are in the rows, marked failed
STATES = {"running": "Running", "interrupted": "Interrupted", "stopped": "Stopped at --max-runtime",
          "failed": "Finished with failures", "finished": "Finished"}
# Colours: the failures section's background (#ffd6d6) is what tests/test_report.py looks for at the
# top of a screenshot.
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;padding:8px 16px;max-width:1200px;color:#222}
h1{font-size:20px;margin:4px 0}h2{font-size:17px;margin:12px 0 6px}h3{font-size:15px;margin:8px 0 4px}
.state{display:inline-block;padding:2px 8px;border-radius:4px;font-weight:600;background:#e8e8e8}
.state-running{background:#fff3c4}.state-interrupted,.state-stopped{background:#ffe0b2}
.state-failed{background:#ffd6d6}.state-finished{background:#dff5df}
.failures{background:#ffd6d6;border-left:8px solid #c0392b;padding:6px 12px;margin:8px 0}
.no-failures{background:#dff5df;border-left:8px solid #2e7d32;padding:6px 12px;margin:8px 0}
.failures ol{margin:4px 0;padding-left:24px}.failures code{font-weight:600}
.error{color:#8b1a1a}table{border-collapse:collapse}td,th{padding:2px 6px;text-align:left;vertical-align:top}
.facts th{color:#555;font-weight:500}.files tr:nth-child(even){background:#f6f6f6}
.files td.n{text-align:right;font-variant-numeric:tabular-nums}.files img,.styles img{display:block}
img{background:#eee}
.s-failed .s{color:#c0392b;font-weight:600}.s-pending .s{color:#a15c00}.s-done .s{color:#2e7d32}
.styles{display:flex;gap:8px}.styles figure,.video figure{margin:0}.video{border-top:1px solid #ddd}
figcaption{font-size:12px;color:#555}code{font-size:13px;word-break:break-all}nav a{margin-right:6px}
.plot polyline{fill:none;stroke-width:1.5}.plot .out{stroke:#1f5fbf}.plot .inp{stroke:#888}
.plot text{font-size:10px;fill:#555}.missing{color:#999;font-size:12px}
"""


@dataclass(frozen=True)
class Asset:
    """A picture of the page: src is a data: URI, or a path under PATH_files/; size its (h, w)."""

    src: str
    size: tuple[int, int]


def img(asset: Asset | None, prefix: str, alt: str = "", box: int = 96) -> str:
    """An <img> of asset shown with its long side `box` px, aspect kept (width and height given, so
    that rows keep their layout while lazy thumbnails load; a 32 px output is shown enlarged)."""
    if asset is None or not all(asset.size):
        return '<span class="missing">none</span>'
    h, w = asset.size
    scale = box / max(h, w)
    src = asset.src if asset.src.startswith("data:") else prefix + asset.src
    lazy = "" if asset.src.startswith("data:") else ' loading="lazy"'
    return (f'<img src="{escape(src)}" width="{max(1, round(w * scale))}" height="{max(1, round(h * scale))}" '
            f'alt="{escape(alt)}"{lazy}>')


def when(seconds: float | None) -> str:
    return datetime.fromtimestamp(seconds).astimezone().isoformat(sep=" ", timespec="seconds") if seconds else "-"


def relative(path: str, base: Path | None) -> str:
    """path under the job's input folder, as the rows show it (the header names the folder)."""
    if base is None:
        return path
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return path


def document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def header(summary: JobSummary, now: float) -> str:
    job = summary.job
    state = summary.state
    text = STATES[state]
    if state == "interrupted":
        text += f" (exit {summary.exit_code}): this page shows the job as it stood when it stopped"
    elif state == "running":
        text += f": last updated {when(now)}"
    started = job.started_at if job else None
    elapsed = summary.seconds if summary.finished or not started else max(0.0, now - started)
    totals = (f"done {summary.done} · skipped {summary.skipped} · failed {summary.failed} · "
              f"pending {summary.pending} · " + (f"left out {len(summary.left_out)} · " if summary.left_out else "")
              + f"{elapsed:.1f} s")
    where = f"{escape(str(job.input))} → {escape(str(job.output))}" if job else escape(str(summary.output))
    return (f'<header><h1>nstvid report: {where}</h1><p><span class="state state-{state}" id="state">'
            f'{escape(text)}</span> <span class="totals" id="totals">{totals}</span></p></header>')


def failures(records: Sequence[dict], base: Path | None) -> str:
    failed = [r for r in records if r.get("status") == "failed"]
    if not failed:
        return '<section id="failures" class="no-failures"><h2>Failures (0)</h2><p>No file failed.</p></section>'
    items = "".join(f'<li><code>{escape(relative(r["path"], base))}</code>: '
                    f'<span class="error">{escape(r.get("error", ""))}</span></li>' for r in failed[:FAILURES_SHOWN])
    more = (f"<p>and {len(failed) - FAILURES_SHOWN} more: the rows marked failed.</p>"
            if len(failed) > FAILURES_SHOWN else "")
    return (f'<section id="failures" class="failures"><h2>Failures ({len(failed)})</h2>'
            f"<ol>{items}</ol>{more}</section>")


def left_out(names: list[str]) -> str:
    """The files a folder walk left out (neither image nor video), named; nothing when none."""
    if not names:
        return ""
    items = "".join(f"<li><code>{escape(name)}</code></li>" for name in names[:FAILURES_SHOWN])
    more = f"<p>and {len(names) - FAILURES_SHOWN} more.</p>" if len(names) > FAILURES_SHOWN else ""
    return (f'<section id="left-out"><h2>Left out ({len(names)}): neither image nor video</h2>'
            f"<ol>{items}</ol>{more}</section>")


def command_text(job: JobInfo) -> str:
    if job.command:
        return shlex.join(job.command)
    return f"(Python API) nstvid.stylise({str(job.input)!r}, output={str(job.output)!r}, ...)"


def changed(obj) -> dict:
    """The fields of a Settings or RunOptions that differ from its class's defaults."""
    default = type(obj)()
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if getattr(obj, f.name) != getattr(default, f.name) and f.name not in ("styles", "output", "command")}


def job_section(summary: JobSummary, styles: list[tuple[str, Asset | None]], prefix: str) -> str:
    job = summary.job
    if job is None:
        return ""
    workers = sorted({r["worker"] for r in summary.records if r.get("worker")})
    worker_text = (f"{len(workers)} Ray worker(s): {', '.join(workers)}" if workers else
                   f"{job.options.ray_workers or 'auto'} Ray worker(s)" if job.engine == "ray" else
                   f"{max(1, len(job.settings.devices))} (this process" +
                   (", one per device)" if job.settings.devices else ")"))
    facts = [("Command", f"<code>{escape(command_text(job))}</code>"), ("Input", escape(str(job.input))),
             ("Output", escape(str(job.output))), ("Started", when(job.started_at)),
             ("Ended", when(summary.ended_at) if summary.finished else "(still running)"),
             ("Device(s)", escape(", ".join(job.devices) or job.settings.device)),
             ("Engine", escape(job.engine)), ("Workers", escape(worker_text)),
             ("Totals", f"{summary.done} done, {summary.skipped} skipped, {summary.failed} failed, "
                        f"{summary.pending} pending, {summary.seconds:.1f} s")]
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    figures = "".join(f"<figure>{img(asset, prefix, Path(path).name, 160)}<figcaption>{escape(Path(path).name)}"
                      "</figcaption></figure>" for path, asset in styles)
    return (f'<section id="job"><h2>Job</h2><table class="facts">{rows}</table>'
            f'<h3>Styles</h3><div class="styles">{figures}</div>'
            f"{settings_table(job.settings, job.options)}</section>")


def settings_table(settings: Settings, options: RunOptions) -> str:
    differ = {**changed(settings), **changed(options)}
    brief = ", ".join(f"{k}={v}" for k, v in differ.items()) or "all defaults"
    every = [(f.name, getattr(settings, f.name)) for f in dataclasses.fields(settings)] + [
        (f.name, getattr(options, f.name)) for f in dataclasses.fields(options) if f.name != "command"]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in every)
    return (f"<details><summary>Settings (differing from the defaults: {escape(brief)})</summary>"
            f'<table class="facts">{rows}</table></details>')


def plot(sample: VideoSample, width: int = 360, height: int = 120) -> str:
    """E_warp per sampled pair, the output's (blue) over the input's own (grey), as inline SVG."""
    if not sample.e_warp:
        return ""
    top = max(sample.e_warp + sample.input_e_warp) or 1.0
    first, last = sample.pairs[0], max(sample.pairs[-1], sample.pairs[0] + 1)
    left, bottom = 44, height - 16

    def points(values):
        return " ".join(f"{left + (k - first) / (last - first) * (width - left - 6):.1f},"
                        f"{bottom - v / top * (bottom - 6):.1f}" for k, v in zip(sample.pairs, values))

    return (f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="E_warp per sampled frame pair">'
            f'<line x1="{left}" y1="{bottom}" x2="{width - 6}" y2="{bottom}" stroke="#aaa"/>'
            f'<line x1="{left}" y1="6" x2="{left}" y2="{bottom}" stroke="#aaa"/>'
            f'<text x="2" y="12">{top:.3g}</text><text x="2" y="{bottom}">0</text>'
            f'<text x="{left}" y="{height - 3}">pair {first}</text>'
            f'<text x="{width - 60}" y="{height - 3}">pair {last}</text>'
            f'<polyline class="inp" points="{points(sample.input_e_warp)}"/>'
            f'<polyline class="out" points="{points(sample.e_warp)}"/></svg>')


def video_article(record: dict, sample: VideoSample, frames: list[tuple[Asset, Asset]], base: Path | None,
                  prefix: str) -> str:
    name = relative(record["path"], base)
    if sample.mean is not None:
        measured = (f"E_warp {sample.mean:.4g} (the input's own: {sample.input_mean:.4g}) over {len(sample.pairs)} "
                    f"of {max(sample.frame_count - 1, 0)} frame pairs at {sample.size[1]}x{sample.size[0]}")
    else:
        measured = "E_warp not measured"
    note = f' <span class="error">{escape(sample.error)}</span>' if sample.error else ""
    picks = sorted({0, sample.frame_count // 2, max(sample.frame_count - 1, 0)})
    heads = "".join(f"<th>frame {k + 1}</th>" for k in picks[:len(frames)])
    ins = "".join(f"<td>{img(a, prefix, 'input', 160)}</td>" for a, _ in frames)
    outs = "".join(f"<td>{img(b, prefix, 'output', 160)}</td>" for _, b in frames)
    data = (f'data-pairs="{",".join(map(str, sample.pairs))}" data-e-warp="{",".join(map(repr, sample.e_warp))}" '
            f'data-input-e-warp="{",".join(map(repr, sample.input_e_warp))}"')  # full precision, for tools
    return (f'<article class="video" {data}><h3>{escape(name)}</h3><p><span class="frames">{sample.frame_count} frames'
            f"</span> · {escape(measured)}{note}</p><table class=\"frames\"><tr><th></th>{heads}</tr>"
            f"<tr><th>input</th>{ins}</tr><tr><th>output</th>{outs}</tr></table>{plot(sample)}</article>")


def row(record: dict, thumbs: tuple[Asset | None, Asset | None], base: Path | None, prefix: str) -> str:
    status = record.get("status") or "pending"
    return (f'<tr class="s-{escape(status)}"><td>{img(thumbs[0], prefix, "input")}</td>'
            f'<td>{img(thumbs[1], prefix, "output")}</td><td class="p">{escape(relative(record["path"], base))}</td>'
            f'<td class="s">{escape(status)}</td><td class="n">{float(record.get("seconds") or 0):.1f}</td>'
            f'<td class="n">{int(record.get("retries") or 0)}</td>'
            f'<td class="error">{escape(record.get("error") or "")}</td></tr>')


def rows_table(rows: list[str], total: int, pager: str) -> str:
    head = ("<thead><tr><th>input</th><th>output</th><th>file</th><th>status</th><th>seconds</th>"
            "<th>retries</th><th>error</th></tr></thead>")
    return (f'<section id="files"><h2>Files ({total})</h2>{pager}<table class="files">{head}<tbody>'
            + "".join(rows) + f"</tbody></table>{pager}</section>")


def pager(pages: int, current: int, to_page) -> str:
    """Links to every page of rows (1-based); to_page(n) gives page n's address from this page."""
    if pages <= 1:
        return ""
    links = "".join(f"<b>{n}</b>" if n == current else f'<a href="{escape(to_page(n))}">{n}</a>'
                    for n in range(1, pages + 1))
    return f'<nav class="pager">rows, page: {links}</nav>'
