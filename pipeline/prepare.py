"""What every job builds once before its first frame or file: the engine and the job's style set,
handed around with the settings as one handle (Prepared)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from .engine import Engine
from .progress import Callback, Message, ignore
from .settings import Settings
from .style_targets import StyleSet


@dataclass(frozen=True)
class Prepared:
    """What a job stylises with: the engine (the network on its device), the style set and the
    settings (schedule, loss weights). A variant of the settings (a preview row's strength) is
    replace(prepared, settings=...): the engine and the styles stay."""

    engine: Engine
    styles: StyleSet
    settings: Settings


def prepare(settings: Settings, progress: Callback = ignore) -> Prepared:
    """Build the engine and read the style images, once per job (or per --devices worker).

    Work done in this process runs on one device: with --devices, the first of them (images; a
    video's pieces go to worker processes, which call this with their own device)."""
    if settings.devices:
        progress(Message(f"--devices: images run on one device, {settings.devices[0]}"))
        settings = replace(settings, device=settings.devices[0], devices=())
    engine = Engine.create(settings)
    styles = StyleSet(engine, settings)
    progress(Message(f"device {engine.device}, precision {engine.precision_name}, "
                     f"weights {engine.weights.kind}", code="engine.ready"))
    return Prepared(engine, styles, settings)
