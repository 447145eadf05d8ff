"""What runs inside a Ray actor: an engine and the job's styles, built once and kept for every unit.

Inputs arrive as bytes (images) or decoded frames (video chunks) and results go back the same way,
so a worker needs no access to the driver's files. The work itself is what a local run does:
image_job.stylise_pictures for a unit of images, job.stylise_frames for a chunk of video frames.
This module never imports ray: it is importable, and testable, without the extra installed.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import replace

import numpy as np

from ..batching import BatchLimit, in_batches, window_batch
from ..engine import Engine, describe_failure
from ..errors import InputError
from ..frames import at_working_size
from ..image_job import stylise_pictures
from ..media.images import Picture, decode_image, encode_image
from ..settings import Settings
from ..style_targets import StyleSet, StyleTargets
from ..video.job import Finished, stylise_frames

Targets = dict[tuple[int, int], StyleTargets]
# One file's outcome: ("done", encoded bytes, seconds, loss), ("input", problem, seconds, 0.0) for
# content that can never be stylised, or ("error", reason, seconds, 0.0) for anything else.
FileResult = tuple[str, bytes | str, float, float]


class Worker:
    """One actor per GPU (or share of a CPU-only cluster). settings.device auto picks the GPU Ray
    gave it. Every call brings `sent`: [object ref] of the style pictures and their file hashes,
    read by the driver, fetched at the first call (a constructor argument held in the object store
    would break Ray's restart of a lost worker)."""

    def __init__(self, settings: Settings, threads: int = 0):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.engine = Engine.create(replace(settings, devices=()))
        self.styles: StyleSet | None = None
        self.image_limits: dict[tuple[int, int], BatchLimit] = {}
        self.window_batches: dict[tuple[int, int], int] = {}  # the trial runs once per size, not per chunk
        self.identity = {"node": _node_address(), "worker": f"{socket.gethostname()}:{os.getpid()}",
                         "device": str(self.engine.device)}

    def _styles(self, sent: list | tuple[list[Picture], list[str]], targets: Targets) -> StyleSet:
        if self.styles is None:
            if isinstance(sent, list):  # [object ref], from a Pool
                import ray

                sent = ray.get(sent[0])
            self.styles = StyleSet(self.engine, sent)
        self.styles.seed(targets)
        return self.styles

    def ping(self) -> dict:
        return self.identity

    def images(self, sent: list, targets: Targets, files: list[tuple[str, bytes]], ext: str, batch: int
               ) -> tuple[dict, list[FileResult]]:
        """Stylise image files sent as (name, bytes), batched by working size; results in the
        order given, outputs encoded for extension ext (".png", ".jpg", ...)."""
        self._styles(sent, targets)
        results: dict[str, FileResult] = {}
        by_size: dict[tuple[int, int], list[tuple[str, Picture, float]]] = {}
        for name, data in files:
            t0 = time.perf_counter()
            try:
                picture = at_working_size(decode_image(data, name), self.engine.settings.size)
            except InputError as e:
                results[name] = ("input", e.problem, time.perf_counter() - t0, 0.0)
                continue
            by_size.setdefault(picture.size, []).append((name, picture, time.perf_counter() - t0))
        for size, group in by_size.items():
            results.update(self._stylise_group(size, group, ext, batch))
        return self.identity, [results[name] for name, _ in files]

    def _stylise_group(self, size: tuple[int, int], group: list[tuple[str, Picture, float]], ext: str,
                       batch: int) -> dict[str, FileResult]:
        limit = self.image_limits.setdefault(size, BatchLimit(batch))
        out: dict[str, FileResult] = {}

        def run(chunk):
            t0 = time.perf_counter()
            styled, result = stylise_pictures(self.engine, self.styles, [p for _, p, _ in chunk])
            share = (time.perf_counter() - t0) / len(chunk)
            return [("done", encode_image(picture, ext), read + share, float(loss))
                    for (_, _, read), picture, loss in zip(chunk, styled, result.total.tolist())]

        try:
            for chunk, outcome in in_batches(group, limit, run, device=self.engine.device, size=size,
                                             what="image"):
                for (name, _, _read), result in zip(chunk, outcome if isinstance(outcome, list)
                                                   else [("error", str(outcome), 0.0, 0.0)] * len(chunk)):
                    out[name] = result
        except Exception as e:  # noqa: BLE001 - the pass failed for its files; the job goes on
            reason = describe_failure(e)
            out.update({name: ("error", reason, read, 0.0) for name, _, read in group if name not in out})
        return out

    def frames(self, sent: list, targets: Targets, size: tuple[int, int], anchor: tuple[np.ndarray, np.ndarray] | None,
               frames: list[np.ndarray]) -> tuple[dict, list[tuple[np.ndarray, float, float, str]]]:
        """Continue a piece's chain over frames (H, W, 3) uint8 of working size (h, w).

        anchor: (input, stylised output) of the frame before them, both uint8, replayed as a resume
        replays a saved frame; None starts the chain afresh (a piece's first frame). Returns per
        frame (output uint8, loss, seconds, how it started)."""
        self._styles(sent, targets)
        if size not in self.window_batches:
            self.window_batches[size] = window_batch(self.engine, self.styles, size)
        stream = ([anchor[0]] if anchor is not None else []) + list(frames)
        saved = {0: anchor[1]} if anchor is not None else {}
        out = []
        for item in stylise_frames(self.engine, self.styles, stream, size, saved=saved, overlap=False,
                                   batch=self.window_batches[size]):
            if isinstance(item, Finished) and item.result is not None:
                out.append((item.frame, item.result.loss, item.seconds, item.result.how))
        return self.identity, out


def _node_address() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside Ray (tests of this module): the host's name
        return socket.gethostname()

