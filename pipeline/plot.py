"""Flicker at a glance: E_warp per frame pair of stylised videos against the input's own, with the
input's scene cuts marked, as a PNG. matplotlib is an optional extra (pip install '.[plot]')."""
from __future__ import annotations

import io
from pathlib import Path

from .errors import UsageError
from .files import atomic_write_bytes


def require_matplotlib():
    """pyplot on a non-interactive backend, or a UsageError that names the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install '.[plot]' (in the nstvid folder)") from None
    return plt


def flicker_plot(path: Path, input_pairs: list[float], outputs: dict[str, list[float]], cuts: list[int]) -> None:
    """Write the plot to path (atomically). Pair k compares frames k and k+1 (1-based); cuts:
    pairs that cross a scene cut (E_warp there measures the cut, not flicker)."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
    pairs = range(1, len(input_pairs) + 1)
    for name, values in outputs.items():
        ax.plot(pairs, values, lw=1.4, label=f"{name} (mean {sum(values) / max(len(values), 1):.4g})")
    mean = sum(input_pairs) / max(len(input_pairs), 1)
    ax.plot(pairs, input_pairs, color="0.45", lw=1.0, ls="--", label=f"input's own (mean {mean:.4g})")
    for k, cut in enumerate(cuts):
        ax.axvline(cut, color="tab:red", alpha=0.35, lw=3, label="scene cut" if k == 0 else None)
    ax.set_xlabel("frame pair (k: frames k and k+1)")
    ax.set_ylabel("E_warp (input's flow)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    data = io.BytesIO()
    fig.savefig(data, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), data.getvalue())
