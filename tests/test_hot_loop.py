"""The optimiser's hot loop on the CPU: the GPU-minded changes give today's results, and the CUDA-only
switches (cuDNN autotuning, CUDA graphs, tensor-core Grams) fall back here as they should."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import CONTENT, STYLE
from nstvid.pipeline.cuda_graphs import CUDA_GRAPHS_ENV, Iterations
from nstvid.pipeline.engine import Engine
from nstvid.pipeline.frames import to_tensor
from nstvid.pipeline.gatys import Temporal, content_targets, objective, optimise
from nstvid.pipeline.losses import gram, gram_cuda, gram_splits
from nstvid.pipeline.media.images import read_image, resize_rgb
from nstvid.pipeline.optimizers import BatchedLBFGS
from nstvid.pipeline.progress import Message
from nstvid.pipeline.settings import Settings
from nstvid.pipeline.style_targets import StyleSet

FP32 = Settings(styles=(str(STYLE),), precision="fp32", device="cpu", tolerance=0)


def photo(h: int = 32, w: int = 48) -> torch.Tensor:
    return to_tensor(resize_rgb(read_image(CONTENT).rgb, (h, w)))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import os

    os.environ.setdefault("NSTVID_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    return Engine.create(FP32)


def test_split_gram_and_channels_last_rows_equal_the_plain_gram():
    """gram_cuda (split-K, channels-last rows, what a GPU runs) sums the same products as gram in
    another order: equal within fp32 rounding of sums over H*W (relative 1e-5)."""
    feats = torch.rand(2, 64, 48, 40).contiguous(memory_format=torch.channels_last)
    plain = gram(feats.contiguous())
    for splits in (1, 4, 30):
        assert torch.allclose(gram_cuda(feats, splits=splits), plain, rtol=1e-5, atol=1e-7), splits
    assert gram_splits(1, 1280 * 720) == 50  # relu1_1 at 720p: 50 products of 18,432 pixels each
    assert gram_splits(4, 320 * 180) == 3 and gram_splits(1, 5000) == 1  # short sums stay whole
    assert gram_splits(8, 1 << 20) == 8 and gram_splits(1, 16411 * 3) == 3  # 16411 is prime


def test_low_precision_gram_falls_back_to_fp32_sums_off_cuda():
    """bf16 features: on CUDA the tensor cores sum them (fp32 accumulation); here bmm has no fp32
    output for bf16, so they are cast first. Either way the products are the exact bf16 ones."""
    feats = torch.rand(1, 16, 24, 24).to(torch.bfloat16)
    assert torch.allclose(gram_cuda(feats), gram(feats.float()), rtol=1e-5)


def test_ring_history_passes_empty_slots_through_to_the_bit():
    """BatchedLBFGS keeps a fixed ring; slots not filled yet must change nothing: a 10-pair ring
    and a 40-pair ring give the same steps while fewer than 10 pairs exist."""
    torch.manual_seed(0)
    target = torch.randn(3, 50)
    xs, opts = [torch.zeros(3, 50), torch.zeros(3, 50)], [BatchedLBFGS(torch.zeros(3, 50), 10),
                                                          BatchedLBFGS(torch.zeros(3, 50), 40)]
    for _ in range(8):
        for x, opt in zip(xs, opts):
            grad = 2 * (x - target) * torch.linspace(1, 3, 50)  # a badly scaled quadratic
            opt.step(x, grad, torch.ones(3, 1))
    assert torch.equal(xs[0], xs[1])
    assert (xs[0] - target).abs().max() < (target.abs().max()) / 10  # and it converges


def test_weights_in_the_compute_dtype_change_no_feature():
    """bf16: the engine keeps the conv weights in bf16 (autocast would cast them at every call);
    the features are those of fp32 weights under autocast, to the bit."""
    bf16 = Engine.create(dataclasses.replace(FP32, precision="bf16"))
    assert all(p.dtype == torch.bfloat16 for n, p in bf16.extractor.named_parameters() if "body" in n)
    reference = Engine.create(FP32)  # fp32 weights, then autocast as before
    image = photo(24, 32)
    with torch.no_grad():
        mine = bf16.features(image)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            theirs = reference.extractor(image)
    for layer in mine:
        assert torch.equal(mine[layer], theirs[layer]), layer


def test_cuda_only_switches_stay_off_on_the_cpu(engine, monkeypatch):
    """cuDNN autotuning and TF32 matmuls are set for CUDA engines only; NSTVID_CUDA_GRAPHS on the
    CPU runs eagerly, says so once, and gives the eager result to the bit."""
    assert not torch.backends.cudnn.benchmark
    assert torch.get_float32_matmul_precision() == "highest"
    targets = StyleSet(engine, FP32).targets((32, 48))
    image = photo()
    eager = optimise(engine, FP32, image, image, targets, iterations=3)
    monkeypatch.setenv(CUDA_GRAPHS_ENV, "1")
    events = []
    graphed = optimise(engine, FP32, image, image, targets, iterations=3, progress=events.append)
    again = optimise(engine, FP32, image, image, targets, iterations=3, progress=events.append)
    assert torch.equal(graphed.images, eager.images) and torch.equal(again.images, eager.images)
    warnings = [e.text for e in events if isinstance(e, Message) and e.level == "warning"]
    assert warnings == [f"{CUDA_GRAPHS_ENV}: a CUDA graph needs CUDA; running eagerly"], warnings
    assert not Iterations(engine, lambda: torch.zeros(1)).graphed


def test_a_loss_that_is_not_finite_stops_the_pass_at_the_next_check(engine):
    """The finiteness check runs with the others (every iteration on the CPU, every 10 on CUDA),
    not as a host sync of its own."""
    targets = StyleSet(engine, FP32).targets((32, 48))
    image = photo()
    broken = image.clone()
    broken[0, 0, 0, 0] = float("nan")
    result = optimise(engine, FP32, broken, image, targets, iterations=5)
    assert result.iterations == 1


def test_the_neighbour_grid_computed_once_is_the_one_computed_per_call(engine):
    targets = StyleSet(engine, FP32).targets((32, 48))
    frames = torch.cat([photo(), photo().flip(-1)])
    flow = torch.randn(2, 2, 32, 48, generator=torch.Generator().manual_seed(3))
    raw = Temporal(frames.flip(0), torch.ones(2, 1, 32, 48), flow, torch.ones(2, 1, 32, 48))
    c_target, c_scale = content_targets(engine, frames)
    with torch.no_grad():
        per_call = objective(engine, FP32, frames, c_target, c_scale, targets, raw)[0]
        once = objective(engine, FP32, frames, c_target, c_scale, targets, raw.prepared(engine.device))[0]
    assert torch.equal(per_call, once)
