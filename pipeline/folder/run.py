"""Running a folder job: the lock, the triage, the units of work, and the record of every file.

* Failures stay local: a bad file is reported through ``FileDone(..., "failed", error=...)``, the job
  goes on, and the exit code is 1. Unusable content is remembered as a permanent failure; anything
  else (disk full, out of memory) is tried again by the next run.
* Batches: images that share a working size are stylised together, up to ``--batch`` per pass
  (batching.py: auto, halved on out of memory). The optimiser keeps per-image state, so a batch gives
  each image what a run on its own gives, up to float rounding. All images of a unit are read before
  the pass, so an unreadable one fails alone; manifest entries, report records and ``FileDone``
  events stay per file. Videos run one at a time (with --devices, on their devices). The backend
  (backend.py, chosen by api.py) runs the units: in this process, one after another, or with
  --engine ray on a cluster's workers, several at once; the loop over them is the same.
* Stopping: the stop request (the CLI's first SIGINT/SIGTERM) and ``--max-runtime`` are looked at
  before each optimisation pass (a video, or a batch of images); no new work starts after them, and
  the summary's exit code is 128 + the signal number. A video stops at its next frame and keeps its
  resume folder. A KeyboardInterrupt (the second signal) abandons the files in hand; image writes
  are atomic, so no partial file ever stands at a final path. In every case the manifest and the
  report are saved and the lock released before run_folder returns.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..backend import Backend
from ..errors import InputError, Interrupted, OutputError, UsageError
from ..lock import FolderLock
from ..progress import NEVER_STOP, Callback, FileDone, Message, StopRequest, Totals, ignore
from ..report import ReportPage, job_info, write_json
from ..report.record import FileRecord
from ..settings import RunOptions, Settings
from .job import FolderJob, FolderSummary, record_failure
from .manifest import MANIFEST_NAME, Manifest, settings_hashes
from .naming import image_suffix
from .triage import Task, Verdict, set_aside, triage, units

__all__ = ["FolderSummary", "check_folders", "run_folder", "dry_run"]


def _tasks(verdicts: list[Verdict], output_dir: Path, digests: dict, manifest: Manifest, summary: FolderSummary,
           progress: Callback) -> list[Task]:
    """Record every skip and failure the triage found; return the files to stylise, in walk order."""
    tasks: list[Task] = []
    for verdict in verdicts:
        item = verdict.item
        out_path = output_dir / item.out_rel if item.out_rel else None
        record = FileRecord.of(str(item.path), str(out_path) if out_path else "", item.kind)
        summary.records.append(record)
        digest = digests["video" if item.kind == "video" else "image"]
        if verdict.action == "skip":
            record.skipped()
            summary.skipped += 1
            if verdict.proven:  # no manifest entry: the output's record says it is done
                manifest.proven(item.rel, output=item.out_rel, settings=digest, size=item.size,
                                mtime_ns=item.mtime_ns, sha256=verdict.sha256)
            manifest.touched(item.rel, item.mtime_ns)
            progress(FileDone(str(item.path), "skipped", 0.0, output=record["output"]))
        elif verdict.action == "fail":
            record_failure(record, verdict.reason, 0.0, summary, progress)
        else:
            tasks.append(Task(item, out_path, digest, verdict.sha256, record))
    return tasks


def _run(input_dir: Path, settings: Settings, options: RunOptions, manifest: Manifest,
         summary: FolderSummary, progress: Callback, started: float, stop: StopRequest,
         backend: Backend) -> None:
    output_dir = summary.output
    digests = settings_hashes(settings)
    verdicts = triage(input_dir, output_dir, overwrite=options.overwrite, digests=digests,
                     image_suffix=image_suffix(options.image_format), manifest_entries=manifest.entries,
                     progress=progress)
    verdicts, summary.left_out = set_aside(verdicts)
    todo = sum(p.action == "do" for p in verdicts)
    progress(Message(f"{len(verdicts)} files: {todo} to stylise, "
                     f"{sum(p.action == 'skip' for p in verdicts)} already done, "
                     f"{sum(p.action == 'fail' for p in verdicts)} unusable" + left_out_text(summary.left_out),
                     code="folder.triage"))
    proven = sum(p.proven for p in verdicts)
    if proven:
        progress(Message(f"{proven} output(s) not in the manifest prove their origin (this input, these "
                         "settings, recorded inside them): kept as done and recorded again", code="folder.proven"))
    tasks = _tasks(verdicts, output_dir, digests, manifest, summary, progress)
    summary.to_do = len(tasks)
    if tasks:
        progress(Totals(len(tasks)))
    images = any(t.item.kind == "image" for t in tasks)
    batch = backend.image_batch() if images else 1
    job = FolderJob(settings, options, manifest, summary, progress, started, stop, len(tasks), batch)
    _run_units(job, backend, tasks, units(tasks, settings.size, batch))
    summary.settle()
    if summary.nothing_to_do:
        progress(Message(f"nothing to do: {summary.skipped} of {len(verdicts)} files already done"
                         + (f", {summary.failed} unusable" if summary.failed else ""), code="folder.nothing_to_do"))


def _run_units(job: FolderJob, backend: Backend, tasks: list[Task], todo: list[list[Task]]) -> None:
    """Each unit on the backend, in order: a unit of images once a worker is free for it (in this
    process: at once), a video alone, after the units in flight. No unit starts after a stop
    request or --max-runtime (job.halted); its files are left for the next run."""
    runner = backend.image_units(job)
    if tasks:
        runner.opening(len(tasks), len(todo))
    try:
        for k, unit in enumerate(todo):
            while not runner.room:
                runner.wait()
            if job.halted():
                for task in unit:
                    job.not_started(task)
                continue
            if k == 0:  # said once work is sure to start (a rerun with nothing to do loads nothing)
                runner.first(tasks)
            if unit[0].item.kind == "video":
                runner.drain()
                job.run_video(unit[0], backend)
            else:
                runner.submit(unit)
        runner.drain()
    except (KeyboardInterrupt, Interrupted) as e:  # a second signal: the units in flight are abandoned
        runner.abandon(e)
        raise


def left_out_text(left_out: list[str]) -> str:
    """What the plan's message adds about the files left out: how many, and the first few."""
    if not left_out:
        return ""
    shown = ", ".join(left_out[:3]) + (", ..." if len(left_out) > 3 else "")
    return f"; {len(left_out)} left out, neither image nor video ({shown})"


def check_folders(input_dir: Path, output_dir: Path, options: RunOptions) -> None:
    """Everything about a folder job's paths that can be refused before work starts."""
    if not input_dir.is_dir():
        raise InputError(input_dir, "not a folder")
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(output_dir, "output exists and is not a folder (a folder input needs an output folder)")
    if output_dir.resolve() == input_dir.resolve():
        raise UsageError(f"{output_dir}: the output folder is the input folder; choose another -o")


def run_folder(input_dir: Path, output_dir: Path, settings: Settings, options: RunOptions, backend: Backend,
               progress: Callback = ignore, stop: StopRequest = NEVER_STOP) -> FolderSummary:
    """Stylise every image and video under input_dir into the mirrored tree under output_dir.

    backend: where the units run (backend.py; the caller closes it). stop: set by the CLI on the
    first SIGINT/SIGTERM (see the module doc). Returns the summary, whose exit_code is what the
    command exits with.
    """
    started = time.monotonic()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    check_folders(input_dir, output_dir, options)
    if options.dry_run:
        return dry_run(input_dir, output_dir, settings, options, progress)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(output_dir, f"cannot create the output folder ({e.strerror or e})") from None
    lock = FolderLock(output_dir)
    lock.acquire(progress)
    summary = FolderSummary(output_dir, job=job_info(input_dir, output_dir, "folder", settings, options))
    # The page is rewritten as files finish (a job killed outright leaves a page saying "running").
    page = ReportPage(options.report) if str(options.report or "").lower().endswith(".html") else None
    manifest = None
    try:
        manifest = Manifest(output_dir / MANIFEST_NAME, progress)
        _run(input_dir, settings, options, manifest, summary, page.watch(progress, summary) if page else progress,
             started, stop, backend)
    except (KeyboardInterrupt, Interrupted) as e:  # between files, or during the walk
        summary.stopped_by(e)
    finally:
        summary.seconds = time.monotonic() - started
        summary.ended_at = time.time()
        try:
            if manifest is not None:
                manifest.finish()
            if page is not None and summary.nothing_to_do and page.path.is_file():
                # The morning-after page keeps the last night that did work: a cron rerun that
                # finds everything done would replace it with "done 0" (README, "The report page").
                progress(Message(f"report: {options.report} left as the last run that did work wrote it "
                                 "(this run had nothing to do)", code="report.kept"))
            elif page is not None:
                page.write(summary)
                progress(Message(f"report: {options.report} ({summary.report_seconds:.2f} s of the job's "
                                 f"{summary.seconds:.1f} s went to writing it)", code="report.written"))
            elif options.report is not None:
                write_json(Path(options.report), summary, input_dir)
        finally:
            lock.release()
    return summary


def dry_run(input_dir: Path, output_dir: Path, settings: Settings, options: RunOptions,
            progress: Callback) -> FolderSummary:
    """Say what a run would do with each file; write nothing."""
    started = time.monotonic()
    entries = Manifest(output_dir / MANIFEST_NAME, progress).entries if output_dir.is_dir() else {}
    summary = FolderSummary(output_dir)
    verdicts = triage(input_dir, output_dir, overwrite=options.overwrite, digests=settings_hashes(settings),
                     image_suffix=image_suffix(options.image_format), manifest_entries=entries,
                     progress=progress)
    verdicts, summary.left_out = set_aside(verdicts)
    for rel in summary.left_out:
        progress(Message(f"would leave out {input_dir / rel}: neither image nor video", code="dry_run.would_leave_out"))
    for verdict in verdicts:
        item = verdict.item
        out = str(output_dir / item.out_rel) if item.out_rel else ""
        if verdict.action == "skip":
            progress(Message(f"would skip {item.path} (done)", code="dry_run.would_skip"))
            status = "skipped"
            summary.skipped += 1
        elif verdict.action == "fail":
            progress(Message(f"would fail {item.path}: {verdict.reason}", level="warning", code="dry_run.would_fail"))
            status = "failed"
            summary.failed += 1
        else:
            progress(Message(f"would stylise {item.path} -> {out}", code="dry_run.would_stylise",
                             fields={"path": str(item.path), "output": str(out)}))
            status = "pending"
            summary.pending += 1
        record = FileRecord.of(str(item.path), out, item.kind, status)
        record["error"] = verdict.reason  # a dry run's record: the verdict on the file
        summary.records.append(record)
    summary.seconds = time.monotonic() - started
    progress(Message(f"dry run: {summary.pending} to stylise, {summary.skipped} done, "
                     f"{summary.failed} would fail, {len(summary.left_out)} left out; nothing written",
                     code="dry_run.summary"))
    return summary
