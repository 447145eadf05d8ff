"""nstvid command line: parse flags, hand them to the API, report progress, errors and exit codes.

`pipeline/` does the work and never prints or exits; this module does nothing else.
"""
from __future__ import annotations

import inspect
import json
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand

from . import __version__
from .pipeline.errors import Interrupted, NstvidError, UsageError
from .pipeline.progress import Estimate, Event, FileDone, FrameDone, Iteration, Message, StopRequest, Totals
from .pipeline.settings import (
    DEFAULT_PRESET,
    JOB_CONTROL,
    LOOK,
    PANELS,
    PREVIEW_COUNT,
    command_line,
)


class Argument(TyperArgument):
    """An argument as other command lines show it: INPUT in the usage line and the help, its type
    not shown (typer 0.29 writes {input} and <path>)."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def display_type_rich(self, ctx) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"


class Command(TyperCommand):
    """typer's command with the help conventions of other command lines: a switch shows no value
    (typer 0.29 writes `--overwrite <bool>`), an argument is Argument; options take the metavar
    the option table gives (Flag.metavar)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.__class__ = Argument  # typer builds the parameters; no hook picks their class
            elif getattr(param, "is_flag", False):
                param.metavar = ""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


app = typer.Typer(add_completion=False,
                  context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 130,
                                    "terminal_width": 130},
                  pretty_exceptions_enable=False, rich_markup_mode="rich")


def json_line(level: str, code: str, message: str, **fields) -> None:
    """One line of the JSON log, on stdout (every line of it, fatal errors included, so that a log
    shipper reads one stream): when (ISO 8601, local time with its offset, to the millisecond),
    level (info | warning | error), the stable code, the message, then the event's own fields."""
    when = datetime.now().astimezone().isoformat(timespec="milliseconds")
    print(json.dumps({"time": when, "level": level, "code": code, "message": message, **fields}), flush=True)


class Reporter:
    """Turns pipeline events into rich progress bars (terminal), plain lines (pipe, cron) or JSON.

    On a terminal a folder job shows two bars: the whole job (files done of those to do, files/s and
    frames/s over every worker, ETA) and the unit in hand (a local image's iterations, a video's
    frames). A single video has one bar, its frames. Rates are taken from finished units, so on
    --engine ray they sum the cluster's workers."""

    def __init__(self, quiet: bool = False, log_format: str = "auto", console=None):
        self.quiet = quiet
        self.tty = (console is not None or sys.stdout.isatty()) and log_format == "auto"
        self.json = log_format == "json"
        self.console = console  # tests hand in a rich Console that records
        self.progress = None
        self.task = None  # the unit in hand
        self.job_task = None  # a folder job's files, once Totals arrives
        self.files_total = 0
        self.files_finished = 0
        self.files_since = 0.0
        self.video_frames = 0  # frames of the current video finished in this run
        self.video_since = 0.0  # when its first one finished
        self.job_frames = 0  # video frames finished in this run
        self.last_line = 0.0

    def __enter__(self):
        if self.tty and not self.quiet:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            class Eta(TimeRemainingColumn):
                """The job's estimate counting down, until finished units give a speed."""

                def render(self, task):
                    deadline = task.fields.get("deadline")
                    if deadline is None:
                        return super().render(task)
                    left = int(max(0.0, deadline - time.time()))
                    return f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                     TextColumn("ETA"), Eta(), console=self.console)
            self.progress.start()
            self.task = self.progress.add_task("starting", total=None, info="", deadline=None)
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def line(self, text: str, code: str, level: str = "info", **fields) -> None:
        """One line of the log; in JSON with its level and stable `code` (progress.Message.code;
        "estimate", "iteration", "frame", "file.done" / "file.skipped" / "file.failed" for the
        other events)."""
        if self.quiet:
            return
        if self.json:
            json_line(level, code, text, **fields)
        elif self.progress is not None:
            self.progress.console.print(text)
        else:
            print(f"nstvid: {text}", flush=True)

    def notice(self, text: str, code: str, level: str, **fields) -> None:
        """A line that --quiet does not silence (an error, a signal): on stderr, or in JSON on the
        log's own stream."""
        if self.json:
            json_line(level, code, text, **fields)
        else:
            typer.echo(f"nstvid: {text}", err=True)

    def fatal(self, error: NstvidError | str, code: str, exit_code: int) -> None:
        """The job's last word when it is refused or ends on an error: one line, then exit."""
        where = {"path": error.path} if hasattr(error, "path") else {}
        self.notice(f"error: {error}", code, "error", exit_code=exit_code, **where)
        raise typer.Exit(exit_code)

    def frames_per_second(self) -> float | None:
        """The current video's rate since its first finished frame (all workers together)."""
        elapsed = time.time() - self.video_since
        return (self.video_frames - 1) / elapsed if self.video_frames >= 2 and elapsed > 0 else None

    def __call__(self, event: Event) -> None:
        if isinstance(event, Message):
            self.line(event.text, event.code or "message", event.level, **event.fields)
        elif isinstance(event, Totals):
            self.files_total, self.files_finished, self.files_since = event.files, 0, time.time()
            if self.progress is not None:
                # The whole job above the unit in hand: bars show in the order they were added.
                self.progress.remove_task(self.task)
                self.job_task = self.progress.add_task("files", total=event.files, info="", deadline=None)
                self.task = self.progress.add_task("starting", total=None, info="", deadline=None)
        elif isinstance(event, Estimate):
            self.line(event.text, "estimate", estimate_seconds=round(event.seconds, 1), units=event.units)
            if self.progress is not None:
                task = self.job_task if self.job_task is not None else self.task
                self.progress.update(task, deadline=time.time() + event.seconds)
        elif isinstance(event, Iteration):
            desc = f"scale {event.scale}/{event.scales}" if event.scales > 1 else "optimising"
            if self.progress is not None:
                self.progress.update(self.task, description=desc, completed=event.iteration,
                                     total=event.iterations, info=f"loss {event.loss:.4g}")
            elif not self.quiet and (time.time() - self.last_line > 5 or event.iteration == event.iterations):
                # Plain mode: a line every 5 s at most, so cron mail stays short.
                self.last_line = time.time()
                self.line(f"{desc} iteration {event.iteration}/{event.iterations} loss {event.loss:.4g}",
                          "iteration", scale=event.scale, iteration=event.iteration, loss=event.loss)
        elif isinstance(event, FrameDone):
            if not self.video_frames:
                self.video_since = time.time()
            self.video_frames += 1
            self.job_frames += 1
            total = event.total or 0
            rate = self.frames_per_second()
            if self.progress is not None:
                speed = f"{rate:.2g} frames/s" if rate else f"{event.seconds:.1f} s/frame"
                self.progress.update(self.task, description="frames", completed=event.index + 1,
                                     total=total or None, info=f"{speed} loss {event.loss:.4g}",
                                     # a video's own bar: from two frames on, its speed gives the ETA
                                     **({"deadline": None} if rate and self.job_task is None else {}))
            else:
                self.line(f"frame {event.index + 1}/{total or '?'} {event.seconds:.2f} s loss {event.loss:.4g}",
                          "frame", frame=event.index + 1, total=total, seconds=event.seconds, loss=event.loss,
                          **({"frames_per_second": round(rate, 3)} if rate else {}))
        elif isinstance(event, FileDone):
            self.file_done(event)

    def file_done(self, event: FileDone) -> None:
        """A line per file; the whole job's bar counts the files stylised or failed in this run."""
        counted = event.status != "skipped" and self.files_total > 0
        self.files_finished += counted
        self.video_frames = 0  # the next video's rate starts afresh
        tally = {"files_done": self.files_finished, "files_total": self.files_total} if counted else {}
        where = {"worker": event.worker, "node": event.node} if event.worker else {}
        self.line(f"{event.status}: {event.path}" + (f" ({event.error})" if event.error else "")
                  + (f" [{event.worker}]" if event.worker else ""), f"file.{event.status}",
                  "error" if event.status == "failed" else "info", path=event.path, status=event.status,
                  seconds=event.seconds, error=event.error, output=event.output, **where, **tally)
        if counted and self.job_task is not None:
            elapsed = max(time.time() - self.files_since, 1e-3)
            rate = self.files_finished / elapsed
            info = f"{rate:.2g} files/s" if rate >= 0.1 else f"{1 / rate:.3g} s/file"
            if self.job_frames:
                info += f", {self.job_frames} video frames"
            self.progress.update(self.job_task, completed=self.files_finished, info=info,
                                 # from two files on, the measured speed gives the ETA
                                 **({"deadline": None} if self.files_finished >= 2 else {}))


def fail(message: str, code: int) -> None:
    typer.echo(f"nstvid: error: {message}", err=True)
    raise typer.Exit(code)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"nstvid {__version__}")
        raise typer.Exit()


STOP = StopRequest()


def install_signal_handlers(reporter: Reporter) -> None:
    """First SIGINT/SIGTERM: ask the job to finish and save the frame or file in hand, then stop
    (exit 130/143). A second one interrupts at once."""

    def request_stop(signum, frame):
        if STOP:
            raise KeyboardInterrupt
        STOP.set(signum)
        reporter.notice(f"{signal.Signals(signum).name}: finishing the current frame, then stopping "
                        "(again to abort now)", "job.signal", "warning", signal=signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)


def job_command(context: typer.Context, input: Path, preset: str, config: Optional[Path], version: bool,
                **flags) -> None:
    """Stylise an image, a video or a folder with the look of a painting."""
    from .pipeline import api  # not for --help; torch loads where work starts

    values = {**given_values(context, flags), "command": ("nstvid", *sys.argv[1:])}  # for the report
    # Until the job is loaded, errors go out in the format the flag or the config file asks for.
    reporter = Reporter(log_format=api.asked_log_format(values.get("log_format"), config))
    try:
        job = api.load_job(input, values.pop("styles", None), values.pop("output", None), config=config,
                           preset=preset if given(context, "preset") else None, **values)
        reporter = Reporter(quiet=job.options.quiet, log_format=job.options.log_format)
        if job.kind != "image":  # a single image stops at once on Ctrl-C; longer jobs save first
            install_signal_handlers(reporter)
        with reporter:
            outcome = api.run(job, progress=reporter, stop=STOP)
        code = report_outcome(outcome, reporter)
    except NstvidError as e:
        reporter.fatal(e, e.code, e.exit_code)
    except KeyboardInterrupt:
        reporter.fatal("interrupted", Interrupted.code, 130)
    if code:
        raise typer.Exit(code)


def given(context: typer.Context, name: str) -> bool:
    """Whether the command line gave this option (not its default)."""
    source = context.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def given_values(context: typer.Context, flags: dict) -> dict:
    """The flags given on the command line, as {field: value} (a switch: the value it sets). A flag
    left at its default gives nothing, so that it defers to the config file and the preset."""
    return {name: flag.sets if flag.sets is not None else flags[name]
            for name, flag, _ in command_line() if given(context, name)}


def job_parameters() -> list[inspect.Parameter]:
    """The command's parameters: the input, then the loader's own options and every option of the
    table (settings.command_line), panel by panel, each with its field's default shown."""

    def param(name, annotation, info):
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)

    own = [  # (panel, parameter): the loader's options, which are not settings
        (LOOK, param("preset", str, typer.Option(DEFAULT_PRESET, "--preset", help="fast | balanced | quality.",
                                                 metavar="NAME", rich_help_panel=LOOK))),
        (JOB_CONTROL, param("config", Optional[Path], typer.Option(
            None, "--config", help="TOML file with any option; flags override it.", metavar="FILE",
            rich_help_panel=JOB_CONTROL))),
        (JOB_CONTROL, param("version", bool, typer.Option(
            False, "--version", callback=version_callback, is_eager=True, help="Show the version and exit.",
            rich_help_panel=JOB_CONTROL))),
    ]
    table = []
    for name, flag, default in command_line():
        if flag.sets is not None:  # a switch
            kind, default = bool, False
        elif flag.kind is not None:  # lists and paths, given as text: no default shown for lists
            kind = flag.kind
            default = [] if kind == list[Path] else None if default in ((), None) else str(default)
        else:
            kind = str if default is None else type(default)
        shown = not (default is None or default is False or default == [])
        table.append((flag.panel, param(name, kind if default is not None else Optional[kind], typer.Option(
            default, *flag.flag_names(name), help=escape(flag.help), show_default=shown,
            metavar=flag.metavar(default) or None, rich_help_panel=flag.panel))))
    ordered = sorted(own + table, key=lambda item: PANELS.index(item[0]))  # stable: table order kept
    return [inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
            param("input", Path, typer.Argument(..., help="Image, video or folder to stylise.",
                                                show_default=False))] + [p for _, p in ordered]


job_command.__signature__ = inspect.Signature(job_parameters())
job_command.__annotations__ = {p.name: p.annotation for p in job_command.__signature__.parameters.values()}
app.command(cls=Command)(job_command)


def report_outcome(outcome, reporter: Reporter) -> int:
    """The last word of a job; returns the exit code."""
    from .pipeline.api import DryRun
    from .pipeline.folder.job import FolderSummary

    if isinstance(outcome, FolderSummary):
        show_summary(outcome, reporter)
        return outcome.exit_code
    if not isinstance(outcome, DryRun):  # a dry run has said what it would do
        reporter.line(f"wrote {outcome.output} ({outcome.seconds:.1f} s)", "job.wrote", output=str(outcome.output),
                      seconds=outcome.seconds)
    return 0


def show_summary(summary, reporter: Reporter) -> None:
    """The end-of-job table: a rich table on a terminal, one parseable line otherwise."""
    if reporter.quiet:
        return
    fields = dict(done=summary.done, skipped=summary.skipped, failed=summary.failed,
                  left_out=len(summary.left_out), seconds=round(summary.seconds, 1))
    if reporter.tty:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="nstvid folder job")
        for key in fields:
            table.add_column(key, justify="right")
        table.add_row(*(str(v) for v in fields.values()))
        Console().print(table)
    else:
        reporter.line("summary " + " ".join(f"{k}={v}" for k, v in fields.items()), "job.summary", **fields)


eval_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                       context_settings={"help_option_names": ["-h", "--help"]}, help="Measure stylised results.")


def part_option(name: str):
    """nstvid's own --start, --duration or --end (the option table's names and help), for nstvid-eval."""
    flag = next(flag for field, flag, _ in command_line() if field == name)
    return typer.Option(None, *flag.flag_names(name), metavar=flag.metavar(None),
                        help="As given to nstvid: " + flag.help.removeprefix("Video: "))


@eval_app.command("temporal", cls=Command,
                  short_help="Flicker (E_warp) of stylised videos against the input's own.")
def eval_temporal(
    input: Path = typer.Argument(..., help="The original video."),
    outputs: List[Path] = typer.Argument(..., help="The stylised video(s)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON with the per-pair values."),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="FILE",
                                        help="Also draw E_warp per frame pair to this PNG (needs matplotlib)."),
    start: Optional[str] = part_option("start"),
    duration: Optional[str] = part_option("duration"),
    end: Optional[str] = part_option("end"),
) -> None:
    """Print the warping error E_warp (Lai et al. 2018) of each OUTPUT, using INPUT's optical flow:
    the flicker it adds over the input's own. An output made of part of INPUT is compared with that
    part: the one given by --start, --duration and --end as nstvid took them, else the one nstvid
    recorded in the output."""
    from .pipeline import api

    try:
        reports = api.flicker(input, outputs, plot, start=start, duration=duration, end=end)
    except NstvidError as e:
        fail(str(e), e.exit_code)
    if as_json:
        typer.echo(json.dumps(reports[0] if len(reports) == 1 else reports))
        return
    for report in reports:
        typer.echo(f"E_warp {report['e_warp']:.6g} over {len(report['pairs'])} frame pairs "
                   f"(input's own: {report['input_e_warp']:.6g})"
                   + (f": {report['output']}" if len(reports) > 1 else ""))
    if plot is not None:
        typer.echo(f"wrote {plot}")


def eval_version_callback(value: bool) -> None:
    if value:
        typer.echo(f"nstvid-eval {__version__}")
        raise typer.Exit()


@eval_app.callback()
def eval_root(version: bool = typer.Option(False, "--version", callback=eval_version_callback, is_eager=True,
                                           help="Show the version and exit.")) -> None:
    """nstvid-eval: measure stylised results."""


def with_preview_count(argv: list[str]) -> list[str]:
    """`--preview` may come without its number (typer's options take one always): give it the
    default then."""
    names = {each for name, flag, _ in command_line() if name == "preview" for each in flag.flag_names(name)}
    out = []
    for k, arg in enumerate(argv):
        out.append(arg)
        if arg in names and not (k + 1 < len(argv) and argv[k + 1].isdigit()):
            out.append(str(PREVIEW_COUNT))
    return out


def json_asked(argv: list[str]) -> bool:
    """Whether the command line asks for the JSON log (read before typer parses it, so that a line
    it refuses is reported in that format too; a config file's log_format is read once parsed)."""
    names = {each for name, flag, _ in command_line() if name == "log_format" for each in flag.flag_names(name)}
    return any(f"{name}=json" in argv for name in names) or any(
        a in names and b == "json" for a, b in zip(argv, argv[1:]))


def main_entry() -> None:
    argv = with_preview_count(sys.argv[1:])
    if not json_asked(argv):
        app(args=argv, prog_name="nstvid")
        return
    from typer._click.exceptions import ClickException  # typer 0.29 carries its own click

    try:  # typer's own refusals (an unknown option, a bad number) as JSON lines too
        code = app(args=argv, prog_name="nstvid", standalone_mode=False)
    except ClickException as e:
        json_line("error", UsageError.code, f"error: {e.format_message()}", exit_code=e.exit_code)
        code = e.exit_code
    except typer.Abort:
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


def eval_entry() -> None:
    eval_app(prog_name="nstvid-eval")

