"""Running optimiser iterations: eagerly, or by replaying one captured iteration as a CUDA graph.

One iteration at 720p launches a few hundred kernels (forward, backward, losses, the L-BFGS
update), each queued by Python; a CUDA graph replays them all from one launch. Every iteration after
the optimiser's first runs the same kernels on the same buffers (optimizers.BatchedLBFGS keeps a fixed
ring; gatys.py keeps the images and targets in place), so one capture serves the rest of a pass.

Opt-in (NSTVID_CUDA_GRAPHS=1) until bench/gpu.sh has measured that it pays; CUDA only, without
--compile. Anything that stops the capture falls back to eager for the rest of the job, with one
warning (engine notices, as for --compile).
"""
from __future__ import annotations

import os
from collections.abc import Callable

import torch

from .engine import Engine, describe_failure
from .progress import Message

CUDA_GRAPHS_ENV = "NSTVID_CUDA_GRAPHS"
WARMUP = 3  # eager iterations before the capture: the optimiser's first step, cuDNN's autotuning


def cuda_graphs_requested() -> bool:
    """The opt-in (CUDA_GRAPHS_ENV); whether the engine can is checked where it is used."""
    return os.environ.get(CUDA_GRAPHS_ENV, "") not in ("", "0")


class Iterations:
    """Calls `step` (one whole iteration, returning its per-sample total (B,)) once per call.

    Eager unless CUDA graphs are wanted and possible: then WARMUP eager calls on a side stream, one
    capture, and replays. Each call returns a tensor of its own (B,), on the device."""

    def __init__(self, engine: Engine, step: Callable[[], torch.Tensor]):
        self.engine, self.step = engine, step
        self.graph: torch.cuda.CUDAGraph | None = None
        self.output: torch.Tensor | None = None
        self.calls = 0
        self.graphed = cuda_graphs_requested()
        if self.graphed and (engine.device.type != "cuda" or engine.compile):
            self.graphed = False
            why = "needs CUDA" if engine.device.type != "cuda" else "is not combined with --compile"
            engine.notice_once(f"{CUDA_GRAPHS_ENV}: a CUDA graph {why}; running eagerly")

    def __call__(self) -> torch.Tensor:
        self.calls += 1
        if not self.graphed:
            return self.engine.guarded(self.step)
        if self.graph is not None:
            self.graph.replay()
            return self.output.clone()
        if self.calls <= WARMUP:
            return self._on_side_stream()
        return self._capture()

    def _on_side_stream(self) -> torch.Tensor:
        side = torch.cuda.Stream(self.engine.device)
        side.wait_stream(torch.cuda.current_stream(self.engine.device))
        with torch.cuda.stream(side):
            total = self.step()
        torch.cuda.current_stream(self.engine.device).wait_stream(side)
        return total

    def _capture(self) -> torch.Tensor:
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.output = self.step()
        except Exception as e:  # noqa: BLE001 - any capture failure: eager still works
            torch.cuda.synchronize(self.engine.device)
            self.graphed, self.output = False, None
            self.engine.notices.append(Message(f"{CUDA_GRAPHS_ENV}: capturing an iteration failed "
                                               f"({describe_failure(e)}); running eagerly", level="warning"))
            return self.engine.guarded(self.step)
        self.graph = graph
        graph.replay()  # the capture only recorded the iteration: this runs it
        return self.output.clone()
