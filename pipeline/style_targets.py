"""Gram targets of a style set, computed once per (styles, blend, scale, working size, network) and
cached on disk under the user cache dir, keyed by a hash of those (style file *contents*, not names).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .color import luminance
from .engine import Engine
from .files import atomic_write_bytes, file_sha256
from .losses import gram, target_scale
from .media.images import Picture, read_image, resize_rgb
from .settings import STYLE_LAYERS, Settings

CACHE_VERSION = 2


def cache_dir() -> Path:
    """$NSTVID_CACHE_DIR, else $XDG_CACHE_HOME/nstvid, else ~/.cache/nstvid."""
    if os.environ.get("NSTVID_CACHE_DIR"):
        return Path(os.environ["NSTVID_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nstvid"


@dataclass
class StyleTargets:
    """Blended Gram targets, one (1, C, C) float32 per style layer, and their loss normalisers (1,)."""

    grams: list[torch.Tensor]
    scales: list[torch.Tensor]

    def to(self, device: torch.device) -> "StyleTargets":
        return StyleTargets([g.to(device) for g in self.grams], [s.to(device) for s in self.scales])


class StyleSet:
    """The style images of a job, read once; targets per working size, memoised and disk-cached."""

    def __init__(self, engine: Engine, settings: Settings, sent: tuple[list[Picture], list[str]] | None = None):
        """settings: the job's (which styles, blended how, at what scale); sent: (pictures, file
        hashes) of settings.styles read elsewhere (a Ray worker has no access to the driver's
        files); None: read them here."""
        self.engine, self.settings = engine, settings
        if sent is None:
            sent = [read_image(path) for path in settings.styles], [file_sha256(p) for p in settings.styles]
        self.pictures, self.file_hashes = sent
        self._memo: dict[tuple[int, int], StyleTargets] = {}
        self.weights_fingerprint = engine.weights.fingerprint()  # hashes the file: once per job
        self.computed = 0  # working sizes whose targets were computed (not memoised, not on disk)

    def key(self, working_size: tuple[int, int]) -> str:
        s = self.settings
        # Beyond the settings: what "embedded" weights and "auto" precision resolve to here.
        parts = {
            "version": CACHE_VERSION,
            "settings": s.digest("style_targets", self.file_hashes),
            "working_size": working_size,
            "weights": self.weights_fingerprint,
            "layers": STYLE_LAYERS,
            "precision": self.engine.precision_name,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    def targets(self, working_size: tuple[int, int]) -> StyleTargets:
        """Targets for content worked at working_size=(h, w): memory, then disk, then computed."""
        if working_size in self._memo:
            return self._memo[working_size]
        path = cache_dir() / "style-targets" / f"{self.key(working_size)}.pt"
        targets = _load(path)
        if targets is None:
            self.computed += 1
            targets = self._compute(working_size)
            buf = io.BytesIO()
            torch.save({"grams": targets.grams, "scales": targets.scales}, buf)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, buf.getvalue())
            except OSError:
                pass  # a read-only cache only costs time
        targets = targets.to(self.engine.device)
        self._memo[working_size] = targets
        return targets

    def computed_targets(self) -> dict[tuple[int, int], StyleTargets]:
        """Every working size's targets held so far, on the CPU: what a Ray driver sends its workers."""
        return {size: targets.to(torch.device("cpu")) for size, targets in self._memo.items()}

    def seed(self, targets: dict[tuple[int, int], StyleTargets]) -> None:
        """Take targets computed elsewhere (computed_targets of the driver's set)."""
        for size, value in targets.items():
            if size not in self._memo:
                self._memo[size] = value.to(self.engine.device)

    @torch.no_grad()
    def _compute(self, working_size: tuple[int, int]) -> StyleTargets:
        s = self.settings
        area = working_size[0] * working_size[1] * s.style_scale ** 2
        grams = [0.0] * len(STYLE_LAYERS)
        for picture, weight in zip(self.pictures, s.blend_weights):
            # The style is resized to the content's working area (times --style-scale), so brush
            # strokes keep their size relative to the output whatever the style file's resolution.
            h, w = picture.size
            k = (area / (h * w)) ** 0.5
            rgb = resize_rgb(picture.rgb, (max(16, round(h * k)), max(16, round(w * k))))
            image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
            if s.preserve_colors:
                image = luminance(image)
            feats = self.engine.features(image)
            for i, layer in enumerate(STYLE_LAYERS):
                grams[i] = grams[i] + weight * gram(feats[layer]).cpu()
        return StyleTargets(list(grams), [target_scale(g) for g in grams])


def _load(path: Path) -> StyleTargets | None:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        return StyleTargets(list(data["grams"]), list(data["scales"]))
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - torch.load of a damaged file raises anything (pickle, zip, EOF)
        return None  # a corrupt cache entry is recomputed and overwritten
