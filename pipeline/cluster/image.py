"""One image on a Ray worker (--engine ray on a single image): the call a folder's unit of images
makes (Worker.images), with one file. This process reads the input and writes the output."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import InputError, ProcessingError
from ..image_job import ImageOutcome
from ..media.images import atomic_write_bytes, fit_long_side, header_size, output_format
from ..progress import Callback, Message, ignore
from ..settings import Settings
from ..style_targets import StyleSet
from .pool import Pool


def stylise_image_on_cluster(pool: Pool, styles: StyleSet, settings: Settings, input_path: Path,
                             output_path: Path, progress: Callback = ignore) -> ImageOutcome:
    """Stylise one image file on one of the pool's workers and write it atomically; the caller
    has checked the output. The worker sends back the total loss only: the outcome's content and
    style losses are NaN."""
    started = time.perf_counter()
    try:
        data = Path(input_path).read_bytes()
    except OSError as e:
        raise InputError(input_path, f"cannot read ({e.strerror or e})") from None
    header = header_size(input_path)
    targets = pool.targets_ref(styles, fit_long_side(header, settings.size) if header else None)
    pool.submit("images", targets, [(str(input_path), data)], output_format(Path(output_path)), 1)
    got = None
    while got is None:
        got = pool.next_result(0.5)
    _, value = got
    if isinstance(value, BaseException):
        raise ProcessingError(f"{input_path}: {value}")
    identity, [(status, payload, _seconds, _loss)] = value
    if status == "input":
        raise InputError(input_path, payload)
    if status != "done":
        raise ProcessingError(f"{input_path}: {payload}")
    atomic_write_bytes(Path(output_path), payload)
    progress(Message(f"stylised on Ray worker {identity['worker']} ({identity['node']})", code="ray.image_done"))
    return ImageOutcome(Path(output_path), float("nan"), float("nan"), settings.iterations,
                        time.perf_counter() - started)
