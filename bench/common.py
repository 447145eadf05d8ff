"""What the bench scripts share, each said once: the sample paths, a clip's frames at a size, the
real chain over frames in memory, per-frame losses without the temporal term, VGG19's convolution
work, GPU timing helpers, and the measurements more than one script (and the tests) use:
revealed-region style ratios and lag behind the motion, which live in tests/metrics.py (the tests
assert on them; bench measures with the same code) and are imported from there.

A script imports it as `common`: `python bench/x.py` puts the script's own folder on the import
path; this module puts tests/ there too, for `metrics`. The tests do not import it.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import torch

from nstvid.pipeline.features import LAYER_INDEX, VGG19_LAYOUT
from nstvid.pipeline.frames import to_tensor, to_u8, video_size
from nstvid.pipeline.gatys import content_targets, objective
from nstvid.pipeline.media.images import read_image
from nstvid.pipeline.media.video import probe, read_frames
from nstvid.pipeline.prepare import prepare
from nstvid.pipeline.settings import STYLE_LAYERS, Settings
from nstvid.pipeline.video.chain import FrameResult
from nstvid.pipeline.video.stream import Finished, stylise_frames

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/metrics.py

from metrics import AGES, OLD, ages_of, lag_count, region_ratios, revealed_ratio  # noqa: E402, F401

SAMPLES = ROOT / "sample_media"
STYLE = SAMPLES / "starry_night.jpg"
CLIP = SAMPLES / "pan.mp4"  # the sample clip
SHARED = ROOT.parent / "shared" / "media"  # the larger media beside the checkout, where there is one
SINTEL = SHARED / "sintel" / "alley_2_clean"


def private_cache(prefix: str = "nstvid-bench-cache-") -> None:
    """A fresh style-target cache for this run (unless NSTVID_CACHE_DIR names one): timings
    never hit targets an earlier run left."""
    os.environ.setdefault("NSTVID_CACHE_DIR", tempfile.mkdtemp(prefix=prefix))


def sample_clip_maker() -> ModuleType:
    """sample_media/make_sample_clip.py (its pan and orbit renders), loaded from its file:
    sample_media is a folder of media and scripts, not a package."""
    spec = importlib.util.spec_from_file_location("make_sample_clip", SAMPLES / "make_sample_clip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- frames ----

def load_frames(path: Path, size: int, count: int) -> list[np.ndarray]:
    """The first count RGB uint8 frames of a video, decoded at working size (long side `size`)."""
    info = probe(path)
    h, w = video_size(info.width, info.height, size)
    return [f for _, f in zip(range(count), read_frames(path, size=(w, h)))]


def clip_frames(name: str, size: int, count: int) -> list[np.ndarray]:
    """RGB uint8 frames of a sample clip (pan, orbit, realshort: the real hand-held one), or of
    the Sintel sequence (real motion, 4 frames)."""
    if name != "sintel":
        return load_frames(SAMPLES / f"{name}.mp4", size, count)
    out = []
    for path in sorted(SINTEL.glob("frame_*.png"))[:count]:
        rgb = read_image(path).rgb
        h, w = video_size(rgb.shape[1], rgb.shape[0], size)
        out.append(to_u8(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)))
    return out


def master_frames(file: str, first: int, count: int) -> list[np.ndarray]:
    """count RGB uint8 frames from `first` at the source's size, of a file under SHARED (a video,
    or a folder of Sintel PNGs; an absolute path works too): every variant's frames are made from
    these (working, flow-size), so all see the same inputs."""
    path = SHARED / file
    if path.is_dir():  # Sintel PNGs
        frames = [read_image(p).rgb for p in sorted(path.glob("frame_*.png"))[first:first + count]]
        return [np.clip(np.rint(f * 255), 0, 255).astype(np.uint8) for f in frames]
    reader = read_frames(path)
    out = [f for i, f in zip(range(first + count), reader) if i >= first]
    reader.close()
    return out


def at_size(frames: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """frames resized (area) to (w, h), as ffmpeg's scaler shrinks when a job decodes them."""
    return [f if f.shape[1::-1] == tuple(size) else cv2.resize(f, size, interpolation=cv2.INTER_AREA)
            for f in frames]


# ---- the chain ----

def chain_frames(settings: Settings, frames: list[np.ndarray], saved: dict[int, np.ndarray] | None = None,
                 size: tuple[int, int] | None = None, batch: int = 1,
                 ) -> tuple[list[np.ndarray], list[float], list[FrameResult | None]]:
    """The real chain (video/stream.py stylise_frames) over frames in memory, in line, `batch` frames
    per window (--batch; 1 by default). saved: {index: stylised uint8 frame} replayed instead of
    computed (e.g. a shared first frame). size: the working (h, w) when the frames are the flow's
    larger sources (default: the frames' own). Returns (outputs uint8, seconds per frame: flow
    planning and optimisation, the FrameResult per frame: None for a replayed one)."""
    prepared = prepare(dataclasses.replace(settings, batch=batch))
    outs, secs, results = [], [], []
    t = time.perf_counter()
    for item in stylise_frames(prepared, frames, size or frames[0].shape[:2], saved=saved, overlap=False):
        if isinstance(item, Finished):
            now = time.perf_counter()
            outs.append(item.frame)
            secs.append(now - t)
            results.append(item.result)
            t = now
    return outs, secs, results


def chain_from(settings: Settings, frames: list[np.ndarray], first: np.ndarray):
    """Frames 2..N chained from the given stylised first frame (replayed as a saved frame, as a
    resumed job does) -> (outputs uint8 incl. first, seconds per frame, iterations per frame)."""
    outs, secs, results = chain_frames(settings, frames, saved={0: first})
    return outs, secs[1:], [r.iterations for r in results[1:]]


# ---- cost on a GPU ----

def conv_shapes(h: int, w: int) -> list[tuple[str, int, int, int, int]]:
    """(name, in channels, out channels, h, w) of VGG19's convs up to relu5_1, where the network
    the engine builds ends, for an h x w image."""
    last = max(LAYER_INDEX[name] for name in STYLE_LAYERS + ("relu4_2",))
    shapes, cin, block, conv, index = [], 3, 1, 1, 0  # index: the module's place in the network
    for item in VGG19_LAYOUT:
        if index > last:
            break
        if item == "M":
            h, w, block, conv, index = h // 2, w // 2, block + 1, 1, index + 1
            continue
        shapes.append((f"conv{block}_{conv}", cin, item, h, w))
        cin, conv, index = item, conv + 1, index + 2  # the conv and its ReLU
    return shapes


def conv_flops(h: int, w: int) -> float:
    """Forward convolution work (FLOP, 2 per multiply-add) of the feature extractor on one h x w
    image. An iteration costs about twice this: the forward pass, then the backward pass to the
    image (the weights are frozen: no weight gradients)."""
    return float(sum(2 * cin * cout * 9 * ch * cw for _, cin, cout, ch, cw in conv_shapes(h, w)))


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its finished children (a driver's ffmpeg
    runs: the scan, the join, the audio mux); Ray workers are not children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def measured(run):
    """(run()'s result, wall s, this process's CPU s, its children's CPU s)."""
    before, t0 = cpu_seconds(), time.perf_counter()
    result = run()
    wall, (own, children) = time.perf_counter() - t0, (a - b for a, b in zip(cpu_seconds(), before))
    return result, wall, own, children


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings on a GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_batch(size: tuple[int, int], count: int) -> torch.Tensor:
    """count frames of the sample clip at (w, h), (B, 3, h, w) float in [0, 1]; past the clip's
    end its frames repeat."""
    out = []
    for i, f in enumerate(read_frames(CLIP, size=size)):
        if i >= count:
            break
        out.append(torch.from_numpy(f).permute(2, 0, 1).float() / 255)
    while len(out) < count:
        out.append(out[len(out) % max(1, len(out))])
    return torch.stack(out)


# ---- losses ----

def losses_per_frame(settings: Settings, outputs: list[np.ndarray], inputs: list[np.ndarray]):
    """Per frame (weighted loss, content loss, style loss) without the temporal term, fp32."""
    prepared = prepare(dataclasses.replace(settings, precision="fp32"))
    engine, styles = prepared.engine, prepared.styles
    totals, content, style = [], [], []
    for out, inp in zip(outputs, inputs):
        c_t, c_s = content_targets(engine, to_tensor(inp.astype(np.float32) / 255))
        with torch.no_grad():
            total, c, st = objective(engine, prepared.settings, to_tensor(out.astype(np.float32) / 255), c_t, c_s,
                                     styles.targets(out.shape[:2]), None)
        totals.append(float(total[0]))
        content.append(float(c[0]))
        style.append(float(st[0]))
    return totals, content, style


def image_losses(settings: Settings, outputs: list[np.ndarray], inputs: list[np.ndarray]):
    """Per-frame (weighted loss without the temporal term, style loss), fp32."""
    totals, _, style = losses_per_frame(settings, outputs, inputs)
    return totals, style
