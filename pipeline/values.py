"""Parsers of option values written as text (flags, config files, API keywords): durations, points
in a video, output sizes. Each raises UsageError naming the option and what it expects."""
from __future__ import annotations

from typing import Any

from .errors import UsageError


def output_long_side(value: Any) -> int | None:
    """--output-size's parser: 'source' (or none) -> None, the input's own size; else a long side in px."""
    if value is None or str(value).strip().lower() == "source":
        return None
    try:
        return int(str(value).strip().lower().removesuffix("px"))
    except ValueError:
        raise UsageError(f"--output-size {value!r}: expected source or a long side in px, e.g. 1920") from None


def parse_duration(text: Any, option: str = "--max-runtime") -> float | None:
    """'90s', '45m', '6h', '1.5h', '1d', '1:30' (m:s), '1:02:03' (h:m:s) or plain seconds ->
    seconds; None or '' stays None. Negative is an error."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        text = str(text).strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            if ":" in text:
                parts = [float(p) for p in text.split(":")]
                if len(parts) > 3 or any(p < 0 for p in parts[1:]) or any(p >= 60 for p in parts[1:]):
                    raise ValueError(text)
                seconds = sum(p * 60 ** k for k, p in enumerate(reversed(parts)))
            elif text and text[-1] in units:
                seconds = float(text[:-1]) * units[text[-1]]
            else:
                seconds = float(text)
        except ValueError:
            raise UsageError(f"{option} {text!r}: expected a duration like 90s, 1:30, 45m or 6h") from None
    if seconds < 0 or seconds != seconds:
        raise UsageError(f"{option} {text!r}: must not be negative")
    return seconds


def parse_point(text: Any, option: str) -> tuple[float, bool] | None:
    """A place or length in a video: a time (parse_duration's forms) -> (seconds, False), or a
    frame count '120f' -> (120, True); None stays None."""
    if text is None or text == "":
        return None
    value = str(text).strip().lower()
    if value.endswith("f"):
        try:
            frames = int(value[:-1])
        except ValueError:
            raise UsageError(f"{option} {text!r}: expected a frame count like 120f") from None
        if frames < 0:
            raise UsageError(f"{option} {text!r}: must not be negative")
        return float(frames), True
    return parse_duration(value, option), False
