"""Running a folder job: the lock, the plan, the units of work, and the record of every file.

* Failures stay local: a bad file is reported through ``FileDone(..., "failed", error=...)``, the job
  goes on, and the exit code is 1. Unusable content is remembered as a permanent failure; anything
  else (disk full, out of memory) is tried again by the next run.
* Batches: images that share a working size are stylised together, up to ``--batch`` per pass
  (batching.py: auto, halved on out of memory). The optimiser keeps per-image state, so a batch gives
  each image what a run on its own gives, up to float rounding. All images of a unit are read before
  the pass, so an unreadable one fails alone; manifest entries, report records and ``FileDone``
  events stay per file. Videos run one at a time (with --devices, on their devices). With
  --engine ray the same units run on a cluster's workers (remote.py).
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

from ..batching import image_batch
from ..cluster.pool import Cluster
from ..errors import InputError, Interrupted, OutputError, UsageError
from ..progress import NEVER_STOP, Callback, FileDone, Message, StopRequest, Totals, ignore
from ..report import ReportPage, job_info, write_json
from ..settings import RunOptions, Settings
from .job import FolderJob, FolderSummary, record_failure, signal_number
from .lock import FolderLock
from .manifest import MANIFEST_NAME, Manifest, settings_hashes
from .plan import Plan, Task, plan_all, units
from .remote import ClusterRun
from .walk import image_suffix

__all__ = ["FolderSummary", "check_folders", "run_folder", "dry_run", "write_report"]


def write_report(path: Path, summary: FolderSummary, input_dir: Path) -> None:
    """The report at path: JSON records or the HTML page, by the extension (report/writer.py)."""
    if Path(path).suffix.lower() == ".html":
        ReportPage(path).write(summary)
    else:
        write_json(Path(path), summary, input_dir)


def _tasks(plans: list[Plan], output_dir: Path, digests: dict, manifest: Manifest, summary: FolderSummary,
           progress: Callback) -> list[Task]:
    """Record every skip and planned failure; return the files to stylise, in walk order."""
    tasks: list[Task] = []
    for plan in plans:
        item = plan.item
        out_path = output_dir / item.out_rel if item.out_rel else None
        record = {"path": str(item.path), "status": "", "error": "", "seconds": 0.0,
                  "output": str(out_path) if out_path else "", "kind": item.kind}
        summary.records.append(record)
        if plan.action == "skip":
            record["status"] = "skipped"
            summary.skipped += 1
            if plan.proven:  # no manifest entry: the output's record says it is done
                manifest.files[item.rel] = {"status": "done", "output": item.out_rel, "size": item.size,
                                            "settings": digests["video" if item.kind == "video" else "image"],
                                            "mtime_ns": item.mtime_ns, "sha256": plan.sha256}
                manifest.dirty = True
            entry = manifest.files[item.rel]
            if entry.get("mtime_ns") != item.mtime_ns:
                entry["mtime_ns"] = item.mtime_ns  # same content, new timestamp: no hashing next time
                manifest.dirty = True
            progress(FileDone(str(item.path), "skipped", 0.0, output=record["output"]))
        elif plan.action == "fail":
            record_failure(record, plan.reason, 0.0, summary, progress)
        else:
            digest = digests["video" if item.kind == "video" else "image"]
            tasks.append(Task(item, out_path, digest, plan.sha256, record))
    return tasks


def _run(input_dir: Path, settings: Settings, options: RunOptions, manifest: Manifest,
         summary: FolderSummary, progress: Callback, started: float, stop: StopRequest,
         cluster: Cluster | None) -> None:
    output_dir = summary.output
    digests = settings_hashes(settings)
    plans = plan_all(input_dir, output_dir, overwrite=options.overwrite, digests=digests,
                     image_suffix=image_suffix(options.image_format), manifest_files=manifest.files,
                     progress=progress)
    todo = sum(p.action == "do" for p in plans)
    progress(Message(f"{len(plans)} files: {todo} to stylise, "
                     f"{sum(p.action == 'skip' for p in plans)} already done, "
                     f"{sum(p.action == 'fail' for p in plans)} unusable", code="folder.plan"))
    proven = sum(p.proven for p in plans)
    if proven:
        progress(Message(f"{proven} output(s) not in the manifest prove their origin (this input, these "
                         "settings, recorded inside them): kept as done and recorded again", code="folder.proven"))
    tasks = _tasks(plans, output_dir, digests, manifest, summary, progress)
    if tasks:
        progress(Totals(len(tasks)))
    images = any(t.item.kind == "image" for t in tasks)
    batch = (cluster.image_batch() if cluster else image_batch(settings)) if images else 1
    job = FolderJob(settings, options, manifest, summary, progress, started, stop, len(tasks), batch)
    if cluster is not None and tasks:
        ClusterRun(job, cluster).run(units(tasks, settings.size, batch))
    for k, unit in enumerate(units(tasks, settings.size, batch) if cluster is None else []):
        if job.halted():
            for task in unit:
                job.not_started(task)
            continue
        if k == 0:  # said once work is sure to start (a rerun with nothing to do loads nothing)
            progress(job.estimate(tasks))
        if unit[0].item.kind == "video":
            job.run_video(unit[0])
        else:
            job.run_images(unit)
    if not summary.interrupted:
        summary.exit_code = 1 if summary.failed else 0
    if summary.done == 0 and summary.pending == 0:
        progress(Message(f"nothing to do: {summary.skipped} of {len(plans)} files already done"
                         + (f", {summary.failed} unusable" if summary.failed else ""), code="folder.nothing_to_do"))


def check_folders(input_dir: Path, output_dir: Path, options: RunOptions) -> None:
    """Everything about a folder job's paths that can be refused before work starts."""
    if not input_dir.is_dir():
        raise InputError(input_dir, "not a folder")
    image_suffix(options.image_format)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(output_dir, "output exists and is not a folder (a folder input needs an output folder)")
    if output_dir.resolve() == input_dir.resolve():
        raise UsageError(f"{output_dir}: the output folder is the input folder; choose another -o")


def run_folder(input_dir: Path, output_dir: Path, settings: Settings, options: RunOptions | None = None,
               progress: Callback = ignore, stop: StopRequest = NEVER_STOP,
               cluster: Cluster | None = None) -> FolderSummary:
    """Stylise every image and video under input_dir into the mirrored tree under output_dir.

    stop: set by the CLI on the first SIGINT/SIGTERM (see the module doc). cluster: run the units
    on its Ray workers (remote.py). Returns the summary, whose exit_code is what the command exits with.
    """
    started = time.monotonic()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    options = options or RunOptions()
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
             started, stop, cluster)
    except (KeyboardInterrupt, Interrupted) as e:  # between files, or during the walk
        summary.interrupted = True
        summary.exit_code = 128 + signal_number(e)
    finally:
        summary.seconds = time.monotonic() - started
        summary.ended_at = time.time()
        try:
            if manifest is not None:
                if manifest.dirty:
                    manifest.save()
                manifest.close()
            if page is not None:
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
    manifest_files = Manifest(output_dir / MANIFEST_NAME, progress).files if output_dir.is_dir() else {}
    summary = FolderSummary(output_dir)
    plans = plan_all(input_dir, output_dir, overwrite=options.overwrite, digests=settings_hashes(settings),
                     image_suffix=image_suffix(options.image_format), manifest_files=manifest_files,
                     progress=progress)
    for plan in plans:
        item = plan.item
        out = str(output_dir / item.out_rel) if item.out_rel else ""
        if plan.action == "skip":
            progress(Message(f"would skip {item.path} (done)", code="dry_run.would_skip"))
            status = "skipped"
            summary.skipped += 1
        elif plan.action == "fail":
            progress(Message(f"would fail {item.path}: {plan.reason}", level="warning", code="dry_run.would_fail"))
            status = "failed"
            summary.failed += 1
        else:
            progress(Message(f"would stylise {item.path} -> {out}", code="dry_run.would_stylise"))
            status = "pending"
            summary.pending += 1
        summary.records.append({"path": str(item.path), "status": status, "error": plan.reason,
                                "seconds": 0.0, "output": out, "kind": item.kind})
    summary.seconds = time.monotonic() - started
    progress(Message(f"dry run: {summary.pending} to stylise, {summary.skipped} done, "
                     f"{summary.failed} would fail; nothing written", code="dry_run.summary"))
    return summary
