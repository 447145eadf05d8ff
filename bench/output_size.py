"""The detail step (pipeline/deliver.py): a painting made at the working size, delivered at the
source's size. Candidates side by side: `resize` (Lanczos alone) and `guided` (Lanczos plus the
input's fine detail where the painting follows its edges).

    .venv/bin/python bench/output_size.py                    # still, cost and video; writes docs/
    .venv/bin/python bench/output_size.py --video bench/.motion-cache/water_handheld-192-*

Stills: ../shared/media/content/rommel.jpg (2304x3072, a 7-megapixel phone photo) painted at 512 px,
and Sintel alley_2 frame 1 (1024x436, rendered: sharp) at 256 px
(the fast preset, 2 scales of 80 iterations: what is measured is the step after it; cached in
bench/.output-cache/), each delivered at its own size both ways: 100% crops where the guided step
adds the most (docs/output_size_NAME_crops.jpg: input, guided, resize), the detail each adds over
Lanczos (variance of the Laplacian of the output over the Lanczos output's) and its time.

Cost: each step on a 1920x1080 and a 3840x2160 frame against the stylisation of that frame at the
512 px working size (a later video frame: frame_iterations of the optimiser at 512x288, as the
chain runs it), timed in one run, and the step's peak memory (tracemalloc: numpy's arrays). No
step runs the network at the output size, so none needs tiles.

Video: for runs of bench/motion.py (their input at the source's size and the chain's output at the
working size, both lossless), the output delivered at the source's size both ways and judged by
../shared/tools/motion_eval (TV-L1): E_warp over the input's own and texture, against the working
size's figures. The step must add no flicker: where it adds detail, it is the input's own.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import torch

from common import ROOT, SHARED, SINTEL, STYLE
from metrics import seam_ratio, tile_edges
from motion import MOTION_EVAL, read_video, write_lossless
from nstvid.pipeline.deliver import detail
from nstvid.pipeline.frames import to_tensor
from nstvid.pipeline.gatys import optimise
from nstvid.pipeline.image_job import stylise_pictures
from nstvid.pipeline.media.images import Picture, read_image, write_image
from nstvid.pipeline.polish import deliver_still, tile_plan
from nstvid.pipeline.prepare import prepare
from nstvid.pipeline.settings import Settings, load

PHOTO = SHARED / "content" / "rommel.jpg"
CACHE = ROOT / "bench" / ".output-cache"
DOCS = ROOT / "docs"
CROP = 384  # px of each 100% crop
FILTERS = ("guided", "resize")  # the steps that are filters (deliver.detail); polish runs the network
POLISH_RUN = 1  # polish iterations a tile in the end-to-end runs: its cost is per tile iteration
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def laplacian_var(rgb: np.ndarray) -> float:
    grey = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def timed(fn, rounds: int = 3) -> tuple[object, float]:
    """fn's result and its median seconds over rounds."""
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def still(photo: Path, working: int, name: str, polish: bool) -> list[str]:
    """photo painted at `working` px (cached), delivered at its own size by each filter, and
    polished (--detail polish, its default iterations) where `polish`: the table's rows, and
    docs/output_size_{name}_crops.jpg (two 100% crops: input, then each step)."""
    source = read_image(photo)
    settings, _ = load({"styles": (str(STYLE),), "size": working, "detail": "polish"}, preset="fast")
    painted_file = CACHE / f"{name}_{working}.png"
    if not painted_file.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        (painted,), _ = stylise_pictures(prepare(settings), [source])
        write_image(painted_file, painted)
    painted = read_image(painted_file).rgb
    size = source.size
    outs, seconds = {}, {}
    for how in FILTERS:
        outs[how], seconds[how] = timed(lambda how=how: detail(painted, source.rgb, size, how))
    steps = FILTERS + ("polish",) * polish
    if polish:
        t0 = time.perf_counter()
        outs["polish"] = deliver_still(prepare(settings), Picture(painted), source).rgb
        seconds["polish"] = time.perf_counter() - t0
    rows = []
    if polish:  # its seams: the gradient across its tiles' edges over the mean; the guided output's at the same lines
        edges = tile_edges(tile_plan(size, settings.polish_tile), size)
        seams = {how: seam_ratio(cv2.cvtColor(outs[how], cv2.COLOR_RGB2GRAY), *edges) for how in ("polish", "guided")}
        print(f"{name}: polish seams {seams['polish']:.3f}x the mean step, guided {seams['guided']:.3f}x at the same "
              f"lines {edges}")
    for how in steps:
        rows.append(f"| {name} | {painted.shape[1]}x{painted.shape[0]} -> {size[1]}x{size[0]} | {how} | "
                    f"{laplacian_var(outs[how]) / laplacian_var(outs['resize']):.2f}x | {seconds[how]:.2f} |")
    rows.append(f"| {name} | - | (the input itself) | {laplacian_var(source.rgb) / laplacian_var(outs['resize']):.2f}x "
                f"| - |")
    # 100% crops where the step adds the most (over a grid of crops): input, then each step.
    h, w = size
    crop = min(CROP, h, w)
    added = np.abs(outs["guided"] - outs["resize"]).mean(-1)
    cells = [(float(added[y:y + crop, x:x + crop].mean()), y, x)
             for y in range(0, h - crop + 1, crop // 2) for x in range(0, w - crop + 1, crop // 2)]
    grid = []
    for _, y, x in sorted(cells, reverse=True)[:2]:
        grid.append(np.hstack([source.rgb[y:y + crop, x:x + crop]] +
                              [outs[how][y:y + crop, x:x + crop] for how in steps]))
    write_image(DOCS / f"output_size_{name}_crops.jpg", Picture(np.vstack(grid)))
    return rows


def cost() -> list[str]:
    """The default step at 1080p against a later frame's stylisation at 512x288, one run."""
    torch.manual_seed(0)
    settings = Settings(styles=(str(STYLE),), size=512).validate()
    prepared = prepare(settings)
    source = read_image(PHOTO).rgb
    frame = cv2.resize(source[:1728], (1920, 1080), interpolation=cv2.INTER_AREA)  # a 16:9 1080p frame
    work = cv2.resize(frame, (512, 288), interpolation=cv2.INTER_AREA)
    content = to_tensor(work)
    targets = prepared.styles.targets((288, 512))

    def stylise():
        return optimise(prepared.engine, settings, content.clone(), content, targets,
                        iterations=settings.frame_iterations)

    _, paint_s = timed(stylise, rounds=1)
    painted = work  # the step's cost does not depend on what the painting holds
    rows = ["| step, output from 512x288 | seconds | x a later frame's stylisation at 512 px | peak memory |",
            "|---|---|---|---|"]
    for (h, w) in ((1080, 1920), (2160, 3840)):
        big = cv2.resize(frame, (w, h), interpolation=cv2.INTER_CUBIC) if h != 1080 else frame
        for how in FILTERS:
            _, seconds = timed(lambda how=how, big=big, h=h, w=w: detail(painted, big, (h, w), how), rounds=5)
            tracemalloc.start()
            detail(painted, big, (h, w), how)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rows.append(f"| {how} at {w}x{h} | {seconds:.3f} | {seconds / paint_s:.4f}x | {peak / 2**20:.0f} MiB |")
    rows.append(f"| (stylisation: {settings.frame_iterations} iterations at 512x288) | {paint_s:.1f} | 1x | - |")
    return rows


def pan_clip(path: Path, size: tuple[int, int], frames: int = 6) -> Path:
    """A slow pan across rommel.jpg at size (w, h): frames at 25 fps, a 2-second AAC tone (cached)."""
    if not path.exists():
        w, h = size
        crop = f"crop=iw:iw*{h}/{w}:0:(ih-iw*{h}/{w})*n/{4 * frames},scale={w}:{h}"  # down a quarter of the slack
        subprocess.run([FFMPEG, "-v", "error", "-y", "-loop", "1", "-i", str(PHOTO), "-f", "lavfi", "-i",
                        "sine=frequency=440:duration=2", "-vf", crop, "-frames:v", str(frames), "-r", "25",
                        "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                        str(path)], check=True)
    return path


def still_at(path: Path, size: tuple[int, int]) -> Path:
    """rommel.jpg cut to 16:9 and resized to size (w, h), as PNG (cached)."""
    if not path.exists():
        source = read_image(PHOTO).rgb
        w, h = size
        band = source[:source.shape[1] * h // w]
        write_image(path, Picture(cv2.resize(band, size, interpolation=cv2.INTER_AREA)))
    return path


def command_peak(args: list[str]) -> tuple[float, float]:
    """(seconds, peak resident MiB) of the installed nstvid run with args, in a process of its own."""
    exe = Path(sys.executable).with_name("nstvid")
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", str(exe), *args, "--log-format", "plain"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"nstvid {' '.join(args)} failed:\n{r.stderr}")
    return time.perf_counter() - t0, int(r.stderr.strip().splitlines()[-1]) / 1024


def end_to_end() -> list[str]:
    """The real command at 1080p and 4K: pan clips (guided, the default) and stills (guided, and
    polish at POLISH_RUN iterations a tile), cheap painting at 256 px; seconds and peak memory."""
    CACHE.mkdir(parents=True, exist_ok=True)
    config = CACHE / "polish.toml"
    config.write_text(f"[schedule]\npolish_iterations = {POLISH_RUN}\n")
    cheap = ["--style", str(STYLE), "--size", "256", "--scales", "1", "--iterations", "20", "--frame-iterations", "5",
             "--overwrite"]
    rows = ["| input | output | detail | seconds | peak resident memory |", "|---|---|---|---|---|"]
    guided_s = {}
    for w, h in ((1920, 1080), (3840, 2160)):
        clip = pan_clip(CACHE / f"pan_{h}p.mp4", (w, h))
        seconds, peak = command_peak([str(clip), *cheap, "-o", str(CACHE / f"pan_{h}p_out.mp4")])
        rows.append(f"| pan clip, 6 frames at {w}x{h} | {w}x{h} | guided | {seconds:.1f} | {peak:.0f} MiB |")
        picture = still_at(CACHE / f"still_{h}p.png", (w, h))
        for how in ("guided", "polish"):
            extra = ["--config", str(config)] if how == "polish" else []
            seconds, peak = command_peak([str(picture), *cheap, "--detail", how, *extra,
                                          "-o", str(CACHE / f"still_{h}p_{how}.png")])
            guided_s.setdefault(h, seconds)
            tiles = len(tile_plan((h, w), Settings().polish_tile))
            note = "" if how == "guided" else (
                f" ({tiles} tiles x {POLISH_RUN}: {(seconds - guided_s[h]) / (tiles * POLISH_RUN):.1f} s a tile "
                f"iteration, so {(seconds - guided_s[h]) * Settings().polish_iterations / POLISH_RUN / 60:.0f} min "
                f"at the default {Settings().polish_iterations})")
            rows.append(f"| still at {w}x{h} | {w}x{h} | {how}{note} | {seconds:.1f} | {peak:.0f} MiB |")
    return rows


# The yardstick the video target is set against (issue 40): the same working-size frames enlarged
# with a bicubic filter, no detail step.
REFERENCE = "bicubic"


def delivered(out: np.ndarray, source: np.ndarray, how: str) -> np.ndarray:
    """A working-size output frame (uint8 RGB) at its source frame's size, by a step of FILTERS or
    by REFERENCE."""
    h, w = source.shape[:2]
    if how == REFERENCE:
        return cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.rint(detail(out / 255.0, source / 255.0, (h, w), how) * 255), 0, 255).astype(np.uint8)


def video(folders: list[Path], steps: tuple[str, ...] = FILTERS, frames: int | None = None) -> list[str]:
    """Rows per run folder: as painted, then REFERENCE and each step at the source's size, judged by
    motion_eval on the first `frames` frames (all: None), cached beside the run as delivered_STEP.mkv
    and delivered_STEP[_FRAMES].json. The step is per frame and holds no state from frame to frame,
    so its flicker over bicubic's needs no long run: a part of the clip reads it as well."""
    rows = ["| clip | painted at | delivered at | frames | step | E_warp x own | E_warp x bicubic's "
            "| texture (moving) |", "|---|---|---|---|---|---|---|---|"]
    for folder in folders:
        result = json.loads((folder / "result.json").read_text())
        ins, outs = read_video(folder / "input.mkv"), read_video(folder / "output.mkv")
        h, w = ins[0].shape[:2]
        rows.append(_row(result["clip"], outs[0].shape, "-", result["frames"], "(as painted)", result, None))
        judged = {}
        for how in (REFERENCE,) + steps:
            path = folder / f"delivered_{how}.mkv"
            figures_file = folder / f"delivered_{how}{f'_{frames}' if frames else ''}.json"
            if not figures_file.exists():
                if not path.exists():
                    write_lossless(path, [delivered(o, i, how) for o, i in zip(outs, ins)])
                run = subprocess.run([str(MOTION_EVAL), str(folder / "input.mkv"), str(path), "--json",
                                      *(["--frames", str(frames)] if frames else [])],
                                     capture_output=True, text=True, check=True)
                figures_file.write_text(run.stdout.strip().splitlines()[-1])
            judged[how] = json.loads(figures_file.read_text())
            rows.append(_row(result["clip"], outs[0].shape, f"{w}x{h}", judged[how]["frames"], how, judged[how],
                             judged[how]["ewarp"] / judged[REFERENCE]["ewarp"]))
    return rows


def _row(clip: str, painted: tuple, delivered_at: str, frames: int, how: str, r: dict,
         over_reference: float | None) -> str:
    moving = r["texture_moving_over_first"]
    return (f"| {clip} | {painted[1]}x{painted[0]} | {delivered_at} | {frames} | {how} | {r['ratio']:.2f}x | "
            f"{'-' if over_reference is None else f'{over_reference:.2f}x'} | "
            f"{r['texture_later_over_first']:.2f} ({'-' if moving is None else round(moving, 2)}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", nargs="*", type=Path, default=None, help="bench/motion.py run folders")
    ap.add_argument("--steps", default=",".join(FILTERS), help="the video's steps beside bicubic")
    ap.add_argument("--video-frames", type=int, default=None, help="frames motion_eval judges (all: default)")
    ap.add_argument("--no-still", action="store_true")
    ap.add_argument("--no-cost", action="store_true")
    ap.add_argument("--end-to-end", action="store_true", help="the command at 1080p and 4K (long: polish)")
    a = ap.parse_args()
    sections = []
    if not a.no_still:
        rows = ["| picture | painted -> delivered | step | detail over Lanczos (Laplacian variance) | seconds |",
                "|---|---|---|---|---|"]
        rows += still(PHOTO, 512, "rommel", polish=False) + still(SINTEL / "frame_0001.png", 256, "sintel", polish=True)
        sections.append(("Stills at their own size", rows))
    if not a.no_cost:
        sections.append(("Cost at 1080p", cost()))
    if a.end_to_end:
        sections.append(("The command at 1080p and 4K", end_to_end()))
    if a.video:
        rows = video(a.video, tuple(a.steps.split(",")), a.video_frames)
        sections.append(("Video: delivered at the source's size (motion_eval, TV-L1)", rows))
    for title, rows in sections:
        print(f"\n{title}\n")
        print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
