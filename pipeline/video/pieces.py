"""How a clip is laid out for work, once for every executor: pieces, segments and seams.

* A **piece** is one warm-start chain, and the unit of parallelism: pieces run side by side on
  different workers. With one worker the clip is one piece (the chain restarts at scene cuts by
  itself). With several, every scene cut starts a piece for free, since the chain restarts there
  anyway, and a shot longer than an even share of the clip is split further. Such a split is a
  restart in the middle of a shot: a plain seam has 93x the E_warp of the same pair inside one chain
  (docs/batching.md), so the later piece starts LEAD_IN frames early and over those frames the two
  chains' outputs are cross-faded (a seam), which spreads the texture change instead of one jump.
* A **segment** is how a piece travels: the unit that is dispatched, encoded, stored and resumed.
  Consecutive segments of a piece carry the chain on: a segment starts from the previous segment's
  last frame (its anchor: that frame's input, decoded again, and its output), as a resume replays a
  saved frame, so a segment join is no restart.
* A **seam** is the lead-in of a piece that starts inside a shot: its frames are owned by the
  previous piece, whose last frames there come back raw (not encoded) as do the lead-in's; the
  driver blends the two and encodes the seam as a short segment of its own.

The output is the segments' and seams' encoded ranges in clip order, joined by a stream copy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEAD_IN = 16  # frames a piece starts early when it starts inside a shot (the cross-fade's length)
# A piece longer than this many even shares (frames / workers) is halved: a shot a little over a
# share is kept whole (a seam costs look; a scene cut costs nothing).
SPLIT_OVER = 1.25


@dataclass(frozen=True)
class Piece:
    """Frames keep_from..stop_at-1 belong to this piece; its chain starts at `start` (a lead-in of
    keep_from - start frames, cross-faded with the previous piece's last frames)."""

    start: int
    keep_from: int
    stop_at: int

    @property
    def lead(self) -> int:
        return self.keep_from - self.start


@dataclass(frozen=True)
class Segment:
    """Frames first..stop-1 of piece `piece` (its `number`-th segment): stylised by one call, of
    which encode_from..encode_to-1 are encoded into the segment's file and the rest (a lead-in, or
    the frames a following seam blends) come back raw."""

    piece: int
    number: int
    first: int
    stop: int
    encode_from: int
    encode_to: int

    @property
    def name(self) -> str:
        return f"p{self.piece:05d}s{self.number:04d}"

    @property
    def frames(self) -> int:
        return self.stop - self.first

    @property
    def encoded(self) -> int:
        return max(0, self.encode_to - self.encode_from)

    def raw_indices(self) -> list[int]:
        """The frames that come back raw: outside the encoded range, plus the last frame (the next
        segment's anchor)."""
        raw = [i for i in range(self.first, self.stop) if not self.encode_from <= i < self.encode_to]
        return sorted({*raw, self.stop - 1})


@dataclass(frozen=True)
class Seam:
    """Frames first..stop-1, owned by piece `piece` - 1 and led into by piece `piece`: blended."""

    piece: int
    first: int
    stop: int

    @property
    def name(self) -> str:
        return f"seam{self.piece:05d}"


@dataclass(frozen=True)
class ClipLayout:
    """A clip cut for work: `frames` exact frames (counted by decoding), its pieces, each piece's
    segments in order, the seams, and the encoded parts in clip order (what the join reads)."""

    frames: int
    pieces: tuple[Piece, ...]
    segments: tuple[tuple[Segment, ...], ...]
    seams: tuple[Seam, ...]

    def parts(self) -> list[Segment | Seam]:
        """Every segment with frames to encode and every seam, in clip order."""
        parts: list[Segment | Seam] = [s for piece in self.segments for s in piece if s.encoded]
        parts += list(self.seams)
        return sorted(parts, key=lambda p: p.encode_from if isinstance(p, Segment) else p.first)


def split_clip(frames: int, workers: int, cut_scores: list[float], threshold: float,
               lead_in: int = LEAD_IN) -> list[Piece]:
    """The pieces of a clip of `frames` frames for `workers` workers: with one, the whole clip;
    with more, a piece at every scene cut (cut_scores[i] is the score between frames i and i+1),
    then the longest piece halved (a seam) while there are fewer pieces than workers or the longest
    is over SPLIT_OVER times an even share: the fewest seams that keep every worker busy."""
    if workers <= 1 or frames <= 1:
        return [Piece(0, 0, frames)]
    cuts = [i + 1 for i, score in enumerate(cut_scores[:frames - 1]) if score > threshold]
    owned = list(zip([0, *cuts], [*cuts, frames]))  # (keep_from, stop_at) of each piece
    share = frames / workers
    while True:
        longest = max(range(len(owned)), key=lambda k: owned[k][1] - owned[k][0])
        first, stop = owned[longest]
        if stop - first < 2 or (len(owned) >= workers and stop - first <= SPLIT_OVER * share):
            break
        middle = (first + stop) // 2
        owned[longest:longest + 1] = [(first, middle), (middle, stop)]
    starts = {0, *cuts}
    # A lead-in never reaches back past the previous piece's own start.
    return [Piece(k - (0 if k in starts else min(lead_in, k - owned[j - 1][0])), k, stop)
            for j, (k, stop) in enumerate(owned)]


def lay_out_clip(frames: int, workers: int, cut_scores: list[float], threshold: float, segment_frames: int, *,
                 lead_in: int = LEAD_IN) -> ClipLayout:
    """Pieces (split_clip), each cut into segments of at most segment_frames, and the seams."""
    pieces = split_clip(frames, workers, cut_scores, threshold, lead_in)
    # A piece's tail that the next piece's lead-in blends with comes back raw.
    tails = [nxt.lead for nxt in pieces[1:]] + [0]
    segments = []
    for number, (piece, tail) in enumerate(zip(pieces, tails)):
        length = piece.stop_at - piece.start
        count = max(1, math.ceil(length / segment_frames))
        bounds = [piece.start + round(j * length / count) for j in range(count + 1)]
        segments.append(tuple(
            Segment(number, j, first, stop, max(first, piece.keep_from), min(stop, piece.stop_at - tail))
            for j, (first, stop) in enumerate(zip(bounds, bounds[1:]))))
    seams = tuple(Seam(k, piece.start, piece.keep_from) for k, piece in enumerate(pieces) if piece.lead)
    return ClipLayout(frames, tuple(pieces), tuple(segments), seams)


def cross_fade(ours: np.ndarray, theirs: np.ndarray, piece: Piece, index: int) -> np.ndarray:
    """Frame `index` of the previous piece's chain (ours), blended towards the next piece's lead-in
    (theirs) linearly over the lead-in: (H, W, 3) uint8 in, uint8 out."""
    alpha = (index - piece.start + 1) / (piece.lead + 1)
    mixed = (1 - alpha) * ours.astype(np.float32) + alpha * theirs.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
