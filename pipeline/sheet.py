"""Contact sheets: pictures in labelled rows and columns, with lines of text under them.

Pictures go in as (H, W, 3) float32 RGB in [0, 1] of any sizes; the sheet comes out as one.
"""
from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
SCALE = 0.45
LINE = 18  # px per text line
GAP = 6  # px around cells
MAX_CELL_HEIGHT = 360
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, FONT, SCALE, 1)[0][0] + 2 * GAP


def _band(width: int, lines: list[str], x: int = GAP) -> np.ndarray:
    band = np.full((LINE * len(lines) + 6, width, 3), 255, np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(band, text, (x, LINE * (k + 1) - 2), FONT, SCALE, BLACK, 1, cv2.LINE_AA)
    return band


def _cell(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """The picture scaled to `height` (aspect kept, at most `width` wide), centred on white."""
    h, w = picture.shape[:2]
    new_w = max(1, min(width, round(w * height / h)))
    scaled = cv2.resize(picture, (new_w, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_CUBIC)
    cell = np.full((height, width, 3), 255, np.uint8)
    left = (width - new_w) // 2
    cell[:, left:left + new_w] = np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)
    return cell


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], columns: list[str], footer: list[str]) -> np.ndarray:
    """rows: (label, one picture per column); columns: a label per column; footer: text lines.

    Cells share one height (the tallest picture's, at most MAX_CELL_HEIGHT) and one width, wide
    enough for the column labels; the sheet is wide enough for every line of text."""
    pictures = [p for _, row in rows for p in row]
    height = min(MAX_CELL_HEIGHT, max(p.shape[0] for p in pictures))
    width = max([round(p.shape[1] * height / p.shape[0]) for p in pictures] + [_text_width(c) for c in columns])
    grid = len(columns) * width + (len(columns) + 1) * GAP
    total = max([grid] + [_text_width(t) for t in footer] + [_text_width(label) for label, _ in rows])
    header = np.full((LINE + 6, total, 3), 255, np.uint8)
    for j, label in enumerate(columns):
        cv2.putText(header, label, (GAP + j * (width + GAP) + 2, LINE), FONT, SCALE, BLACK, 1, cv2.LINE_AA)
    blocks = [header]
    for label, row in rows:
        blocks.append(_band(total, [label]))
        line = np.full((height, total, 3), 255, np.uint8)
        for j, picture in enumerate(row):
            x = GAP + j * (width + GAP)
            line[:, x:x + width] = _cell(picture, height, width)
        blocks.append(line)
    blocks.append(_band(total, [""] + footer))
    return np.concatenate(blocks, axis=0).astype(np.float32) / 255.0
