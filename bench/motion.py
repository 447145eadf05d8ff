"""The standing motion benchmark: the chain on every real clip, judged by ../shared/tools/motion_eval
(TV-L1 flow, a different algorithm from the DIS flow the chain warps with), never by the chain's own.

    .venv/bin/python bench/motion.py                       # the full matrix (long: hours on 2 cores)
    .venv/bin/python bench/motion.py --screen              # realshort, water_handheld, the cut join, 192 px
    .venv/bin/python bench/motion.py --screen --set warp_interpolation=linear --set temporal_detail=1
    .venv/bin/python bench/motion.py --table docs/motion.md --strips docs   # tables and strips from the cache

Per clip (every real clip in ../shared/media/video, a part where longer, plus two joins made here: a
hard cut, and a lighting change inside one shot) and working size, 48 frames (the clip where shorter)
run through the real chain (video/job.py stylise_frames, batch 1, as a job runs them) at the
balanced preset, output at the working size. The frames are decoded at the source's size and
resized by the chain's own plan, as a job decodes them. The input part and the output are written
losslessly (x264rgb, qp 0), so that an encoder's keyframe cannot lift frame 1's texture, and
motion_eval compares the two:
- E_warp (TV-L1) over the input's own; first pair and the first pair after each cut over the median;
- lag frames at the default strength and at 0.1 (a second run: each output frame should then look
  like its own input frame);
- texture later/first, overall and in moving pixels;
- style and content loss of the later frames without the temporal term (bench/common.py);
- seconds per later frame (flow and optimisation) in that run.
--independent runs once per clip and size on 24 frames (it is slow) and is reused by every variant.

Each run's figures are cached under bench/.motion-cache/ by clip, frames, size and settings: a
rerun takes what is there and runs only what is missing, so a long matrix can be stopped and resumed.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from common import ROOT, STYLE, master_frames

CACHE = ROOT / "bench" / ".motion-cache"
MOTION_EVAL = ROOT.parent / "shared" / "tools" / "motion_eval"
FRAMES = 48
INDEPENDENT_FRAMES = 24
LAG_STRENGTH = 0.1

# name -> (file under ../shared/media, first frame, frames). people_walking's people walk in from
# about frame 330; the joins are made by `joined` below.
CLIPS = {
    "realshort": ("video/realshort.mp4", 0),
    "water_handheld": ("video/water_handheld.mp4", 0),
    "friday_film": ("video/friday_film.mp4", 0),
    "people_walking": ("video/people_walking.mp4", 330),
    "sintel_market": ("video/sintel_market_50.mp4", 0),
    "cut_join": None,
    "light_join": None,
}
SCREEN = ("realshort", "water_handheld", "cut_join")
# The settings a row of the table is told apart by (each result records their values as run, so
# that a change of the defaults leaves earlier rows readable), and the names of the chains compared.
CHAIN = ("warp_interpolation", "temporal_detail", "flow_preset", "flow_scale", "follow_light", "motion_boundaries",
         "strength", "independent")
# A chain's values of CHAIN[:6] where a run did not record one (motion_boundaries came later: true).
RECORDED_BEFORE = ("linear", 1.0, "medium", 1.0, "off", True)
# follow_light as recorded when it was a bool (false, or true: the offset, the only model then).
FOLLOW_LIGHT_WAS = {False: "off", True: "offset"}
NAMES = {("linear", 1.0, "medium", 1.0, "off", True): "before: bilinear warp, temporal term at every scale",
         ("lanczos", 0.2, "medium", 1.0, "off", True): "Lanczos warp, temporal detail 0.2, motion boundaries",
         ("lanczos", 0.2, "medium", 1.0, "off", False): "after: Lanczos warp, temporal detail 0.2",
         ("lanczos", 0.2, "fine", 2.0, "off", False): "after + DIS fine flow from 2x frames",
         ("lanczos", 0.2, "medium", 1.0, "offset", False): "after + follow_light offset (ReCoNet)",
         ("lanczos", 0.2, "medium", 1.0, "gain", False): "shipped: after + follow_light gain"}


def joined(name: str, count: int) -> list[np.ndarray]:
    """The two clips made here, at 480x360:
    cut_join: water_handheld's first half, then friday_film's (a hard cut at count // 2);
    light_join: water_handheld with the light dimmed to 0.6 over two frames at count // 2, as when a
    lamp goes out or a cloud covers the sun: one shot, no cut."""
    half = count // 2
    water = [cv2.resize(f, (480, 360), interpolation=cv2.INTER_AREA)
             for f in master_frames("video/water_handheld.mp4", 0, count)]
    if name == "cut_join":
        film = [cv2.resize(f, (480, 360), interpolation=cv2.INTER_AREA)
                for f in master_frames("video/friday_film.mp4", 0, count - half)]
        return water[:half] + film
    gains = [1.0 if k < half else 0.8 if k == half else 0.6 for k in range(len(water))]
    return [np.clip(f.astype(np.float32) * g, 0, 255).round().astype(np.uint8) for f, g in zip(water, gains)]


def clip_frames(name: str, count: int) -> list[np.ndarray]:
    """count RGB uint8 frames of a clip at its source's size (fewer where the clip is shorter)."""
    if CLIPS[name] is None:
        return joined(name, count)
    file, first = CLIPS[name]
    return master_frames(file, first, count)


def write_lossless(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> None:
    """RGB frames -> a lossless x264rgb file that motion_eval (imageio-ffmpeg) reads back exactly."""
    h, w = frames[0].shape[:2]
    tmp = path.with_suffix(".part.mkv")
    writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=fps, codec="libx264rgb", pix_fmt_in="rgb24",
                                         pix_fmt_out="rgb24", output_params=["-qp", "0"], macro_block_size=1)
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    tmp.rename(path)


@dataclasses.dataclass(frozen=True)
class Job:
    clip: str
    size: int
    frames: int
    overrides: tuple[tuple[str, object], ...]  # settings over the balanced defaults

    def settings(self):
        from nstvid.pipeline.settings import Settings
        return Settings(styles=(str(STYLE),), size=self.size, **dict(self.overrides)).validate()

    @property
    def key(self) -> str:
        """The run's cache key: the settings as the video frames' digest sees them (a setting that
        cannot change a frame, or a checkout's path to the style, does not make a run stale)."""
        from nstvid.pipeline.settings import style_file_hashes
        settings = self.settings()
        digest = settings.digest("video_frames", style_file_hashes(settings))
        # The digest holds --precision as written ("auto"); the dtype it picks depends on the CPU.
        key = [self.clip, self.size, self.frames, digest, precision_used(settings)]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]

    @property
    def folder(self) -> Path:
        return CACHE / f"{self.clip}-{self.size}-{self.key}"


def precision_used(settings) -> str:
    """The precision this machine's CPU runs the settings at: "fp32" or "bf16"."""
    import torch

    from nstvid.pipeline.engine import DTYPE_NAMES, pick_dtype
    return DTYPE_NAMES[pick_dtype(settings.precision, torch.device("cpu"))]


def run_job(job: Job) -> dict:
    """Stylise, write, evaluate; the figures (cached in job.folder/result.json)."""
    import torch

    from common import chain_frames, losses_per_frame
    from nstvid.pipeline.frames import flow_source_size, video_size

    done = job.folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    torch.set_num_threads(int(os.environ.get("MOTION_THREADS", "1")))
    job.folder.mkdir(parents=True, exist_ok=True)
    settings = job.settings()
    sources = clip_frames(job.clip, job.frames)
    height, width = sources[0].shape[:2]
    working = video_size(width, height, job.size)
    flow_w, flow_h = flow_source_size(width, height, working, settings)
    decoded = [cv2.resize(f, (flow_w, flow_h), interpolation=cv2.INTER_AREA) if (flow_w, flow_h) != (width, height)
               else f for f in sources]
    outs, secs, _ = chain_frames(settings, decoded, size=working)
    inputs = [cv2.resize(f, working[::-1], interpolation=cv2.INTER_AREA) for f in sources]
    write_lossless(job.folder / "input.mkv", sources)
    write_lossless(job.folder / "output.mkv", outs)
    evaluated = subprocess.run([str(MOTION_EVAL), str(job.folder / "input.mkv"), str(job.folder / "output.mkv"),
                                "--json"], capture_output=True, text=True, check=True)
    figures = json.loads(evaluated.stdout.strip().splitlines()[-1])
    _, content, style = losses_per_frame(settings, outs, inputs)
    figures.update(style=float(np.mean(style[1:])), content=float(np.mean(content[1:])),
                   seconds_later=float(np.mean(secs[1:])), settings=dict(job.overrides), clip=job.clip,
                   working=[working[1], working[0]], chain={k: getattr(settings, k) for k in CHAIN},
                   precision=precision_used(settings))
    done.write_text(json.dumps(figures))
    return figures


def jobs_for(clips, sizes, overrides, lag: bool, independent: bool, frames: int = FRAMES) -> list[Job]:
    out = []
    for clip in clips:
        for size in sizes:
            out.append(Job(clip, size, frames, overrides))
            if lag:
                out.append(Job(clip, size, frames, overrides + (("strength", LAG_STRENGTH),)))
            if independent:
                out.append(Job(clip, size, INDEPENDENT_FRAMES, (("independent", True),)))
    return out


def cost(size: int = 192, frames: int = 4, rounds: int = 2) -> str:
    """Seconds per later frame (flow and optimisation) of the chain before issue 38 and of the
    shipped one, on realshort's frames 2..frames at `size`, from one shared first frame, in one
    process, interleaved (A B A B) so that a busy machine weighs on both alike."""
    import torch

    from common import chain_frames, chain_from
    from nstvid.pipeline.frames import video_size
    from nstvid.pipeline.settings import Settings

    torch.set_num_threads(int(os.environ.get("MOTION_THREADS", "1")))
    sources = clip_frames("realshort", frames)
    working = video_size(sources[0].shape[1], sources[0].shape[0], size)
    inputs = [cv2.resize(f, working[::-1], interpolation=cv2.INTER_AREA) for f in sources]
    chains = {"before": dict(warp_interpolation="linear", temporal_detail=1.0), "after": {}}
    first = None
    seconds: dict[str, list[float]] = {name: [] for name in chains}
    for _ in range(rounds):
        for name, over in chains.items():
            settings = Settings(styles=(str(STYLE),), size=size, **over)
            if first is None:  # a quick first frame: only the later frames are timed
                first = chain_frames(dataclasses.replace(settings, scales=1, iterations=40), inputs[:1])[0][0]
            _, secs, _ = chain_from(settings, inputs, first)
            seconds[name] += secs
    before, after = (float(np.mean(seconds[k])) for k in chains)
    return (f"{before:.2f} s before, {after:.2f} s after: {after / before:.2f}x "
            f"({rounds} rounds of {frames - 1} frames each, interleaved)")


def parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--sizes", default="192,256")
    ap.add_argument("--screen", action="store_true", help="realshort, water_handheld and cut_join at 192 px")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting over the defaults")
    ap.add_argument("--no-lag", action="store_true", help="skip the strength 0.1 run")
    ap.add_argument("--no-independent", action="store_true")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    ap.add_argument("--frames", type=int, default=FRAMES, help="frames per run (quick looks only; the table "
                                                                "reads runs of the benchmark's own 48)")
    ap.add_argument("--cost", action="store_true", help="seconds per later frame, before issue 38 and now")
    ap.add_argument("--table", type=Path, help="write the cached results as a markdown table here")
    ap.add_argument("--strips", type=Path, help="write a strip per clip (frames 1, 2, middle, last) here")
    a = ap.parse_args()
    clips = SCREEN if a.screen else tuple(a.clips.split(","))
    sizes = (192,) if a.screen else tuple(int(s) for s in a.sizes.split(","))
    overrides = tuple((k, parse_value(v)) for k, v in (s.split("=", 1) for s in a.set))
    if a.cost:
        print(cost())
        return
    if a.table or a.strips:
        report(a.table, a.strips)
        return
    jobs = jobs_for(clips, sizes, overrides, not a.no_lag, not a.no_independent, a.frames)
    with ProcessPoolExecutor(a.jobs) as pool:
        for job, figures in zip(jobs, pool.map(run_job, jobs)):
            print(f"{job.folder.name} {dict(job.overrides)}: E_warp {figures['ratio']:.2f}x own, "
                  f"first {figures['first_pair_over_median']:.2f}, after cut "
                  f"{[round(x, 2) for x in figures['after_cut_over_median']]} (over its shot's median "
                  f"{[x and round(x, 2) for x in after_cut_over_shot(figures)]}), lag {figures['lag_frames']}"
                  f"/{figures['frames']}, texture {figures['texture_later_over_first']:.2f} "
                  f"({figures['texture_moving_over_first'] or float('nan'):.2f}), style {figures['style']:.4f}, "
                  f"content {figures['content']:.4f}, {figures['seconds_later']:.1f} s/frame", flush=True)


def results() -> list[dict]:
    """Every cached run's figures (result.json), with its folder. A run recorded before a setting
    joined CHAIN gets it from its overrides, or else its value then (RECORDED_BEFORE)."""
    out = []
    for path in sorted(CACHE.glob("*/result.json")):
        r = json.loads(path.read_text())
        r["folder"] = path.parent
        r["chain"] = {**dict(zip(CHAIN, RECORDED_BEFORE)),
                      **{k: v for k, v in r["settings"].items() if k in CHAIN}, **r["chain"]}
        r["chain"]["follow_light"] = FOLLOW_LIGHT_WAS.get(r["chain"]["follow_light"], r["chain"]["follow_light"])
        out.append(r)
    return out


def chain_name(chain: dict) -> str:
    key = tuple(chain[k] for k in CHAIN[:6])
    return NAMES.get(key, ", ".join(f"{k} {v}" for k, v in zip(CHAIN[:6], key)))


def report(table: Path | None, strips: Path | None) -> None:
    """The markdown table of every cached run of the benchmark's frames, clip by clip, and the
    strips (frames 1, 2, middle, last) of its runs of the benchmark's frames at strength 0.5."""
    rows = ["| clip | size | precision | chain | E_warp x own | x independent | first pair | after cut (over its shot) "
            "| lag | lag at 0.1 | texture (moving) | style | content | s / later frame |", "|" + "---|" * 14]
    runs = results()
    for clip, size, precision in itertools.product(CLIPS, (192, 256), ("fp32", "bf16")):
        where = f"{clip} | {size} | {precision}"
        mine = [r for r in runs if r["clip"] == clip and max(r["working"]) == size
                and r.get("precision", "fp32") == precision]
        ind = next((r for r in mine if r["chain"]["independent"]), None)
        shown = []  # a run of a chain already shown: the same settings under a key of other fields' defaults
        for r in mine:
            if r["chain"]["independent"] or r["chain"]["strength"] != 0.5 or r["frames"] < min(FRAMES, 36):
                continue
            identity = (r["chain"], {k: v for k, v in r["settings"].items() if k not in CHAIN})
            if identity in shown:
                continue
            shown.append(identity)
            lag = next((x for x in mine if x["chain"] == {**r["chain"], "strength": LAG_STRENGTH}), None)
            rows.append(row(where, chain_name(r["chain"]), r, lag, ind))
        if ind is not None:
            rows.append(row(where, f"--independent ({ind['frames']} frames)", ind, None, None))
    text = "\n".join(rows)
    print(text)
    if table:
        table.write_text(text + "\n")
    for r in runs if strips else ():
        if r["chain"]["strength"] == 0.5 and not r["chain"]["independent"] and r["frames"] >= 36:
            name = re.sub(r"[^a-z0-9]+", "_", chain_name(r["chain"]).split(":")[0].lower()).strip("_")
            strip(r["folder"], strips / f"motion_{r['clip']}_{max(r['working'])}_{name}.jpg")


def after_cut_over_shot(r: dict) -> list[float | None]:
    """The first pair after each cut over the median pair of its own shot (the pairs after it up to
    the next cut). motion_eval divides by the clip's median pair instead: on a join of two shots
    whose pairs sit at different levels (smooth water, then grainy film) that reads the second
    shot's level as a pop."""
    pairs, cuts = r["pairs"], r["cuts"]  # pairs[t] is the pair (t, t+1); cuts: pair numbers from 1
    out = []
    for k, t in enumerate(cuts):
        end = cuts[k + 1] - 1 if k + 1 < len(cuts) else len(pairs)
        shot = pairs[t + 1:end]
        # None where the cut is followed at once by another (light_join dims over two frames)
        out.append(pairs[t] / float(np.median(shot)) if t < len(pairs) and shot else None)
    return out


def row(where: str, name, r, lag, ind) -> str:
    def out_of_place(res):
        return f"{res['lag_frames']}/{res['frames']}" if res else "-"
    cuts = ", ".join(f"{x:.2f} ({'-' if y is None else f'{y:.2f}'})"
                     for x, y in zip(r["after_cut_over_median"], after_cut_over_shot(r))) or "-"
    vs = f"{r['ewarp'] / ind['ewarp']:.3f}x" if ind else "-"
    moving = r["texture_moving_over_first"]
    return (f"| {where} | {name} | {r['ratio']:.2f}x | {vs} | {r['first_pair_over_median']:.2f} | {cuts} "
            f"| {out_of_place(r)} | {out_of_place(lag)} | {r['texture_later_over_first']:.2f} "
            f"({'-' if moving is None else round(moving, 2)}) | {r['style']:.4f} | {r['content']:.4f} "
            f"| {r['seconds_later']:.1f} |")


def read_video(file: Path) -> list[np.ndarray]:
    """Every frame of a video as RGB uint8 (H, W, 3)."""
    gen = imageio_ffmpeg.read_frames(str(file))
    w, h = next(gen)["size"]
    return [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen]


def strip(folder: Path, path: Path) -> None:
    """Frames 1, 2, middle and last: input above, output below."""
    outs = read_video(folder / "output.mkv")
    h, w = outs[0].shape[:2]
    ins = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in read_video(folder / "input.mkv")]
    picks = [0, 1, len(outs) // 2, len(outs) - 1]
    grid = np.vstack([np.hstack([ins[k] for k in picks]), np.hstack([outs[k] for k in picks])])
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


if __name__ == "__main__":
    sys.exit(main())
