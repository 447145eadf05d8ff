"""Real footage in motion, through the real command on committed real clips: no pop after the
first frame or after a scene cut, and no lag behind the motion. The measures are tests/metrics.py's
(docs/temporal.md; bench/ measures with the same code), run on the command's output."""
from __future__ import annotations

import cv2
import numpy as np

from conftest import CUT, REALSHORT, STYLE, clip
from metrics import e_warp, lag_count, texture_retention
from nstvid.pipeline.media.video import read_frames, run_ffmpeg

POP_BOUND = 2.0
TEXTURE_BOUND = 0.85  # later frames over frame 1: 0.85x what --independent keeps (about 1.0)
LIGHT_FOLLOWED = 0.3  # of the footage's dimming, by the last frame


def test_no_pop_after_the_first_frame_or_a_scene_cut(tmp_path, run_nstvid):
    """cut.mp4's first 4 frames of hand-held water, then 4 of an old film (a scene cut). The
    first pair of each shot (frames 1-2 and 5-6) against that shot's median pair (E_warp): the chain
    used to repaint its first frame's strokes at frame 2 (24x the later pairs on a held-out clip,
    4.1x after a cut). The first frame now ends as the chain's later frames are made
    (settle_iterations). At 128 px (docs/temporal.md 5.2) before this default 2.10x and 1.67x after
    the cut. The bound is the issue's target, 2x."""
    per_shot = 5  # frames of each shot: the cut after frame 5 (cut.mp4's shots are 12 frames each)
    short = tmp_path / "cut.mp4"
    run_ffmpeg(["-y", "-i", str(CUT), "-vf", rf"select=lt(mod(n\,12)\,{per_shot}),setpts=N/30/TB",
                "-frames:v", str(2 * per_shot),
                "-an", "-c:v", "libx264", "-crf", "10", str(short)], path=CUT)
    out = tmp_path / "cut_out.mp4"
    # Each shot's full frame at 2 scales of 60 iterations, not 3 of 200: the pop is about how the
    # chain's frames (the defaults: 30 frame and settle iterations) follow the full one. Measured on
    # an AMD EPYC (AVX2) in fp32, first pair over median: 0.44 and 0.47 with 5 a shot (49 s of one
    # core), but 1.77 and 0.46 with 4, whose median of two pairs is noise (motion_boundaries off,
    # the default since); with the boundary test, 0.53, 0.97 with 4; 0.28, 0.91 with 5; 0.20, 1.25
    # with 6; earlier, 0.24 and 0.89 with 8; at the defaults, 8 frames: 0.65 and 1.32. In bf16
    # (NSTVID_TEST_PRECISION=bf16 on an AMD EPYC with AVX-512 BF16): 0.39 and 0.67.
    r = run_nstvid(short, "--style", STYLE, "-o", out, "--size", "64", "--iterations", "60", "--scales", "2",
                   "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    pairs = e_warp(short, out)["pairs"]
    assert len(pairs) == 2 * per_shot - 1
    for start, end in ((0, per_shot - 1), (per_shot, 2 * per_shot - 1)):  # pair per_shot - 1 is the cut itself
        first, rest = pairs[start], float(np.median(pairs[start + 1:end]))
        assert first <= POP_BOUND * rest, (start, first, rest, pairs)


def test_the_painting_does_not_lag_behind_the_motion(tmp_path, run_nstvid):
    """At a low strength (0.1) each output frame should look like its own input frame: matched
    against input frames k-3..k+3 (correlation of blurred grey images), none is closer to a
    neighbour than to its own, as with --independent. With the flow from frames twice the working
    size (flow_scale = 2, from a config file), which catches the hand-held shake that DIS at 96 px
    misses. Measured on an AMD EPYC in fp32 (metrics.lag_count, 12 frames at 96 px): 0 of
    12 out of place with flow_scale 2 and with --independent; 1 of 12 with the default flow at the
    working size (docs/temporal.md 5.3).

    Later frames get 8 iterations, not the default 30: the fewer, the closer a frame stays to its
    warped start, so a lag shows more, and the run costs 22 s of one core, not 41. Measured here
    (8 frames, AMD EPYC Zen 4, fp32): 0 of 8 out of place with flow_scale 2, 1 of 8 with the default
    flow (so the test can fail); with 15 iterations the same, 0 and 1. In bf16 (an AMD EPYC with
    AVX-512 BF16, NSTVID_TEST_PRECISION=bf16): 0 of 8 as well."""
    short = clip(tmp_path, REALSHORT, 8, "short.mp4", audio=False)
    config = tmp_path / "flow.toml"
    config.write_text("[video]\nflow_scale = 2.0\n")
    out = tmp_path / "low.mp4"
    r = run_nstvid(short, "--style", STYLE, "-o", out, "--size", "96", "--scales", "1", "--iterations", "40",
                   "--strength", "0.1", "--frame-iterations", "8", "--config", config, "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    outs = list(read_frames(out))
    inputs = [cv2.resize(f, outs[0].shape[1::-1], interpolation=cv2.INTER_AREA) for f in read_frames(short)]
    wrong, earlier, compared = lag_count(outs, inputs)
    assert compared == len(outs) == 8
    assert wrong == 0, (wrong, earlier)


def test_later_frames_stay_as_painted_as_the_first(tmp_path, run_nstvid):
    """realshort's first 12 frames at 96 px, at the shipped defaults but for the first frame's
    schedule (one scale of 40 iterations: the chain's later frames are what is measured), encoded
    without loss (--crf 0: an x264 keyframe would lift frame 1). Each warp resamples the strokes;
    the bilinear warp and a temporal term that held the blur at every scale softened the painting
    frame after frame. --independent keeps about 1.0 by construction (every frame painted as the
    first); the bound is 0.85 of that, issue 38's target. Measured (bench/motion.py's chain in
    process, the same 12 frames and schedule, without loss; AMD EPYC, AVX2 only, so fp32): 0.905
    with the Lanczos warp and temporal_detail 0.2, 0.503 with the bilinear warp and the temporal
    term at every scale, as before (at 192 px, 36 frames: 0.85 against 0.49, docs/motion.md);
    0.929 since motion_boundaries is off by default. On an AMD EPYC with AVX-512 BF16, through the
    command as here: 0.921 in fp32 and 0.898 in bf16 (autocast, the default on such a CPU), so
    bf16 rounding costs about 0.02-0.03 and the bound leaves 0.048 under the lowest figure."""
    short = clip(tmp_path, REALSHORT, 12, "short.mp4", audio=False)
    out = tmp_path / "painted.mp4"
    r = run_nstvid(short, "--style", STYLE, "-o", out, "--size", "96", "--scales", "1", "--iterations", "40",
                   "--crf", "0")
    assert r.returncode == 0, r.stderr
    retention = texture_retention(list(read_frames(out)))
    assert retention >= TEXTURE_BOUND, retention


def test_the_painting_follows_a_change_of_light(tmp_path, run_nstvid):
    """realshort's first 6 frames, the last 3 dimmed by 5% a frame (to 0.86: a cloud, a lamp turned
    down), without loss. The painting should dim with the footage, without a pop. Each step is
    under the cut rule's threshold, as it was before the rule scaled luminance (0.25), so the chain
    carries the painting over: without follow_light it holds the previous light, and the painting
    kept its brightness. The carried painting takes half of the change (follow_light_share 0.5),
    about what a painting made from scratch takes (0.42 of a 0.7 dimming) and what the chain
    settles to (at the full change it drifts back by 3% of it a frame). Measured here, on an AMD
    EPYC with AVX-512 BF16, the painting's dimming by the last frame over the footage's: 0.51 in
    fp32 and 0.52 in bf16 (without follow_light 0.10 and 0.11); the pairs from the change on at
    most 1.36x the median pair before it (1.31x in bf16). bench/motion.py has the 192 px runs on
    light_join and friday_film (docs/motion.md)."""
    frames = [f for _, f in zip(range(6), read_frames(REALSHORT))]
    change = 3
    for k, frame in enumerate(frames):
        lit = frame.astype(np.float32) * 0.95 ** max(0, k - change + 1)
        cv2.imwrite(str(tmp_path / f"in_{k:02d}.png"), np.clip(lit, 0, 255).astype(np.uint8)[..., ::-1])
    dimmed = tmp_path / "dimmed.mp4"
    run_ffmpeg(["-y", "-v", "error", "-framerate", "25", "-i", str(tmp_path / "in_%02d.png"), "-c:v", "libx264rgb",
                "-qp", "0", str(dimmed)], path=dimmed)
    out = tmp_path / "painted.mp4"
    r = run_nstvid(dimmed, "--style", STYLE, "-o", out, "--size", "64", "--scales", "1", "--iterations", "40",
                   "--crf", "0")
    assert r.returncode == 0, r.stderr
    outs = list(read_frames(out))
    inputs = [cv2.resize(f, outs[0].shape[1::-1], interpolation=cv2.INTER_AREA) for f in read_frames(dimmed)]

    def dimming(seq):  # 1 - mean luma of the last frame over the last frame before the change
        return 1 - float(cv2.cvtColor(seq[-1], cv2.COLOR_RGB2GRAY).mean()) / float(
            cv2.cvtColor(seq[change - 1], cv2.COLOR_RGB2GRAY).mean())

    followed = dimming(outs) / dimming(inputs)
    assert followed >= LIGHT_FOLLOWED, followed
    pairs = e_warp(dimmed, out)["pairs"]  # pair k is frames k, k + 1
    assert max(pairs[change - 1:]) <= POP_BOUND * float(np.median(pairs[:change - 1])), pairs
