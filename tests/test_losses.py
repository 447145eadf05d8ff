"""The maths on its own: losses, the batched optimiser, feature extraction."""
from __future__ import annotations

import pytest
import torch

from conftest import CONTENT, STYLE
from nstvid.pipeline.engine import Engine
from nstvid.pipeline.frames import to_tensor
from nstvid.pipeline.gatys import Temporal, content_targets, objective, optimise, scale_sizes
from nstvid.pipeline.losses import gram, style_loss, temporal_loss, tv_loss
from nstvid.pipeline.media.images import read_image, resize_rgb
from nstvid.pipeline.settings import Settings
from nstvid.pipeline.style_targets import StyleSet


def test_gram_is_normalised_per_sample():
    a = torch.ones(1, 2, 3, 4)
    b = torch.full((1, 2, 6, 4), 3.0)  # other size, other magnitude
    g = gram(torch.cat([a, a]))
    assert g.shape == (2, 2, 2)
    assert torch.allclose(g, torch.full_like(g, 1 / 2))  # sum 12 of ones / (C*H*W = 24)
    assert torch.allclose(gram(b), torch.full((1, 2, 2), 9 * 24 / 48))


def test_losses_are_per_sample():
    x = torch.rand(3, 3, 8, 8)
    y = x.clone()
    y[1] += 0.1
    assert tv_loss(x).shape == (3,)
    t = temporal_loss(y, x, torch.ones(3, 1, 8, 8))
    assert t[0] == 0 and t[2] == 0 and t[1] == pytest.approx(0.01, rel=1e-4)
    masked = temporal_loss(y, x, torch.zeros(3, 1, 8, 8))
    assert masked.abs().max() == 0
    g = gram(torch.rand(2, 4, 5, 5))
    s = style_loss([g], [g[:1]], [torch.ones(1)], (1.0,))
    assert s[0] == 0 and s[1] > 0


def test_temporal_detail_frees_the_strokes_and_holds_where_the_painting_is():
    """With temporal_detail 0 the temporal term holds the low pass of the difference only: an image
    re-sharpened against its blurred warp costs little, one moved by 3 px still costs most of what
    it cost before. detail 1 is Ruder et al.'s plain masked MSE."""
    from nstvid.pipeline.losses import gaussian_blur

    photo = to_tensor(resize_rgb(read_image(CONTENT).rgb, (96, 144)))
    blurred = gaussian_blur(photo, 1.0)
    moved = torch.roll(gaussian_blur(photo, 3.0), 3, dims=-1)  # a smooth picture, misplaced
    mask = torch.ones_like(photo[:, :1])
    assert float(temporal_loss(photo, photo, mask, 0.0)) == 0
    sharpened = float(temporal_loss(photo, blurred, mask, 0.0)) / float(temporal_loss(photo, blurred, mask))
    held = (float(temporal_loss(gaussian_blur(photo, 3.0), moved, mask, 0.0))
            / float(temporal_loss(gaussian_blur(photo, 3.0), moved, mask)))
    assert sharpened < 0.25, sharpened  # measured 0.17 (the low pass of a 1 px blur is not quite 0)
    assert held > 0.75, held  # measured 0.86
    assert gaussian_blur(photo, 1.0).shape == photo.shape


def test_temporal_weight_holds_at_512_px_and_grows_with_the_square_of_the_size_above():
    """The objective's temporal term is 50x the temporal loss up to 512 px, 200x at 1024 px: with one
    weight for every size, larger frames flickered more (docs/temporal_size.md)."""
    settings = Settings(styles=(str(STYLE),), precision="fp32", device="cpu")
    engine = Engine.create(settings)
    styles = StyleSet(engine, settings)
    photo = read_image(CONTENT).rgb
    for width, weight in ((256, 50), (512, 50), (1024, 200)):
        strip = to_tensor(resize_rgb(photo, (width * 2 // 3, width))[100:132])  # 32 rows: VGG is quick
        moved = torch.roll(strip, 3, dims=-1)  # a previous output that the warp misplaced by 3 px
        mask = torch.ones_like(strip[:, :1])
        c_target, c_scale = content_targets(engine, strip)
        targets = styles.targets(tuple(strip.shape[-2:]))
        with torch.no_grad():
            with_temporal = objective(engine, settings, strip, c_target, c_scale, targets, Temporal(moved, mask))[0]
            without = objective(engine, settings, strip, c_target, c_scale, targets, None)[0]
        term = float(with_temporal - without)
        expected = weight * float(temporal_loss(strip, moved, mask, settings.temporal_detail, settings.temporal_sigma))
        assert term == pytest.approx(expected, rel=1e-3), width


def test_scale_schedule():
    assert scale_sizes((300, 451), 3) == [(75, 113), (150, 226), (300, 451)]
    assert scale_sizes((64, 96), 3) == [(64, 96)]  # nothing below 64 px


def _crops(size: int, count: int) -> torch.Tensor:
    rgb = read_image(CONTENT).rgb
    tiles = [resize_rgb(rgb[:, 40 * i: 40 * i + 300], (size, size)) for i in range(count)]
    return torch.cat([to_tensor(t) for t in tiles])


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_batch_equals_single_runs(optimizer):
    """A batch of 4 optimises like 4 separate runs: per-sample losses and per-sample optimiser state.

    Tolerances, from what can differ:
    * Batch against singles: the convolutions of a batch of 4 and of 1 sum in other orders, so
      the gradients differ by fp32 rounding (relative ~1e-6), and the first step (L1 norm <= 1)
      moves pixels by less than 1e-6 differently (measured 6e-8). After that L-BFGS feeds each
      difference back through its curvature pairs and grows it by a CPU-dependent factor per step
      (after 4 steps 1.3e-4 on an Intel CPU, 2.7e-3 on an AMD EPYC), so later pixels are compared
      by loss only: 2% after 8 steps.
    * Within one batch shape nothing is summed across samples, so a sample's trajectory cannot
      depend on its neighbours: changing sample 0 leaves samples 1-3 equal to the bit after 8
      steps. Any coupling (shared dot products, as torch.optim.LBFGS has) moves them by ~1e-2."""
    settings = Settings(styles=(str(STYLE),), precision="fp32", device="cpu", optimizer=optimizer,
                        learning_rate=0.05, tolerance=0)
    engine = Engine.create(settings)
    targets = StyleSet(engine, settings).targets((48, 48))
    content = _crops(48, 5)[:4]
    batch = optimise(engine, settings, content, content, targets, iterations=1)
    singles = torch.cat([optimise(engine, settings, content[i:i + 1], content[i:i + 1], targets, iterations=1).images
                         for i in range(4)])
    assert (batch.images - singles).abs().max() < 1e-6
    batch = optimise(engine, settings, content, content, targets, iterations=8)
    assert (batch.images - content).abs().mean() > 0.005  # and it did move
    single_totals = torch.cat([optimise(engine, settings, content[i:i + 1], content[i:i + 1], targets,
                                        iterations=8).total for i in range(4)])
    assert torch.allclose(batch.total, single_totals, rtol=0.02)
    neighbour = _crops(48, 5)[4:]
    other = torch.cat([neighbour, content[1:]])
    moved = optimise(engine, settings, other, other, targets, iterations=8)
    assert torch.equal(moved.images[1:], batch.images[1:])
    assert (moved.images[0] - batch.images[0]).abs().max() > 0.05  # sample 0 did change


def test_embedded_weights_classify_like_vgg():
    """The embedded weights are the real VGG19: relu5_1 responds far more to a photo than to flat grey."""
    settings = Settings(styles=(str(STYLE),), precision="fp32", device="cpu")
    engine = Engine.create(settings)
    photo = _crops(128, 1)
    grey = torch.full_like(photo, 0.5)
    with torch.no_grad():
        f_photo = engine.features(photo)["relu5_1"].mean()
        f_grey = engine.features(grey)["relu5_1"].mean()
    assert f_photo > 3 * f_grey
