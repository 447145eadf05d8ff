"""Video probing, decoding and encoding through the bundled ffmpeg, on the real sample clips.

Variants (other frame rates, containers, rotation, damaged files) are made from the sample clips in
tmp_path with the same ffmpeg, through pipeline.media.video.run_ffmpeg.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import ORBIT, PAN
from nstvid.pipeline.errors import FileError, TruncatedInputError
from nstvid.pipeline.media.video import (
    FFmpegError,
    MediaError,
    MediaNotFoundError,
    NoVideoStreamError,
    TruncatedVideoError,
    UnreadableMediaError,
    VideoWriter,
    probe,
    read_frames,
    run_ffmpeg,
)


def ffmpeg(*args) -> None:
    run_ffmpeg(["-y", "-v", "error", *map(str, args)])


def decode_all(path) -> list[np.ndarray]:
    return list(read_frames(path))


def copy_through_writer(src: Path, dst: Path, audio_from: Path | None) -> VideoWriter:
    info = probe(src)
    with VideoWriter(dst, info.width, info.height, info.fps, audio_from=audio_from) as writer:
        for frame in read_frames(src, info=info):
            writer.write(frame)
    return writer


@pytest.fixture(scope="module")
def pan_frames():
    return decode_all(PAN)


# --- probe and read -------------------------------------------------------------------------------


def test_probe_sample_clip():
    info = probe(PAN)
    assert (info.width, info.height) == (320, 180)
    assert info.fps == Fraction(25) and isinstance(info.fps, Fraction)
    assert info.frame_count == 75 and info.duration == pytest.approx(3.0)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.video_codec == "h264" and info.rotation == 0
    assert not info.variable_frame_rate and not info.truncated


def test_read_frames_counts_and_scales(pan_frames):
    assert len(pan_frames) == 75
    assert all(f.shape == (180, 320, 3) and f.dtype == np.uint8 for f in pan_frames)
    reader = read_frames(PAN, size=(160, 90))
    small = [frame for _, frame in zip(range(5), reader)]
    reader.close()  # stops ffmpeg early without an error
    assert reader.frames_read == 5 and small[0].shape == (90, 160, 3)
    # The area-scaled frame is the full frame averaged over 2x2 blocks (up to rounding/chroma).
    blocks = pan_frames[4].reshape(90, 2, 160, 2, 3).mean(axis=(1, 3))
    assert np.abs(small[4].astype(np.float32) - blocks).mean() < 3.0


def test_rotation_is_applied(tmp_path, pan_frames):
    rotated = tmp_path / "rotated.mp4"
    # Display-matrix rotation only (the pixels are unchanged); ffmpeg must autorotate on decode.
    ffmpeg("-display_rotation:v:0", 90, "-i", PAN, "-c", "copy", rotated)
    info = probe(rotated)
    assert info.rotation == 90 and (info.width, info.height) == (180, 320)
    frames = decode_all(rotated)
    assert len(frames) == 75 and frames[0].shape == (320, 180, 3)
    ccw = np.rot90(pan_frames[0], k=1)  # counter-clockwise, as the display matrix says
    assert np.abs(frames[0].astype(int) - ccw).mean() < 1.0
    assert np.abs(frames[0].astype(int) - np.rot90(pan_frames[0], k=-1)).mean() > 10.0


# --- write ----------------------------------------------------------------------------------------


def test_round_trip_keeps_frames_rate_duration_and_audio(tmp_path, pan_frames):
    out = tmp_path / "out.mp4"
    writer = copy_through_writer(PAN, out, audio_from=PAN)
    assert writer.frames_written == 75 and not writer.audio_reencoded  # AAC copied
    src, dst = probe(PAN), probe(out)
    frames = decode_all(out)
    assert len(frames) == 75
    assert dst.fps == src.fps == Fraction(25)
    assert abs(dst.duration - src.duration) < 1 / 25
    assert abs(dst.container_duration - src.container_duration) < 1 / 25
    assert dst.has_audio and dst.audio_codec == "aac"
    # Colours survive RGB -> YUV -> RGB (x264 at CRF 18 plus conversion: ~1 level on average).
    err = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(frames, pan_frames)])
    assert err < 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temp files left


def test_no_audio_input_gives_no_audio_output(tmp_path):
    out = tmp_path / "orbit_copy.mp4"
    copy_through_writer(ORBIT, out, audio_from=ORBIT)
    info = probe(out)
    assert not info.has_audio and info.frame_count == 75 and len(decode_all(out)) == 75
    out2 = tmp_path / "no_audio_source.mp4"
    copy_through_writer(ORBIT, out2, audio_from=None)
    assert not probe(out2).has_audio


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_ntsc_rate_stays_exact(tmp_path, container):
    ntsc = tmp_path / f"ntsc.{container}"
    # Same 75 frames retimed to 29.97 fps (Matroska stores millisecond-rounded timestamps).
    ffmpeg("-i", PAN, "-vf", "setpts=N*1001/30000/TB", "-r", "30000/1001", "-c:v", "libx264",
           "-preset", "ultrafast", "-c:a", "copy", ntsc)  # fmt: skip
    info = probe(ntsc)
    assert info.fps == Fraction(30000, 1001) and not info.variable_frame_rate
    assert info.frame_count == 75
    out = tmp_path / "out.mp4"
    copy_through_writer(ntsc, out, audio_from=ntsc)
    dst = probe(out)
    assert dst.fps == Fraction(30000, 1001)
    assert len(decode_all(out)) == 75
    assert abs(dst.duration - info.duration) < 1001 / 30000


def test_audio_the_container_cannot_take_is_reencoded(tmp_path):
    source = tmp_path / "pcm.mkv"
    ffmpeg("-i", PAN, "-c:v", "copy", "-c:a", "pcm_s16le", source)
    assert probe(source).audio_codec == "pcm_s16le"
    out = tmp_path / "out.mp4"
    writer = copy_through_writer(source, out, audio_from=source)
    assert writer.audio_reencoded
    info = probe(out)
    assert info.audio_codec == "aac" and info.frame_count == 75
    assert abs(info.container_duration - 3.0) < 1 / 25


def test_variable_frame_rate_is_resampled_to_constant(tmp_path):
    vfr = tmp_path / "vfr.mp4"
    # 1 s at 25 fps, then 1 s at 5 fps (frames of the same clip), kept VFR in the container.
    ffmpeg("-i", PAN, "-filter_complex",
           "[0:v]trim=0:1,setpts=PTS-STARTPTS[a];[0:v]trim=1:2,setpts=PTS-STARTPTS,fps=5[b];"
           "[a][b]concat=n=2:v=1[v]",
           "-map", "[v]", "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast",
           vfr)  # fmt: skip
    info = probe(vfr)
    assert info.variable_frame_rate and info.fps == Fraction(25)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    reader = read_frames(vfr, info=info)
    frames = list(reader)
    assert reader.resampled_to_cfr
    assert abs(len(frames) - 50) <= 1  # 2 s at a constant 25 fps
    out = tmp_path / "out.mp4"
    copy_through_writer(vfr, out, audio_from=None)
    assert abs(probe(out).duration - info.duration) < 1 / 25


def test_odd_size_is_cropped_to_even(tmp_path, pan_frames):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 319, 179, Fraction(25)) as writer:
        for frame in pan_frames[:5]:
            writer.write(np.ascontiguousarray(frame[:179, :319]))
    assert writer.output_size == (318, 178)
    info = probe(out)
    assert (info.width, info.height) == (318, 178) and info.frame_count == 5


def test_failure_inside_the_writer_leaves_no_file(tmp_path, pan_frames):
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="stylisation failed"):
        with VideoWriter(out, 320, 180, Fraction(25), audio_from=PAN) as writer:
            writer.write(pan_frames[0])
            raise RuntimeError("stylisation failed")
    assert list(tmp_path.iterdir()) == []
    # An existing output stays as it was.
    out.write_bytes(b"previous result")
    with pytest.raises(ValueError, match="expected a uint8 frame"):
        with VideoWriter(out, 320, 180, Fraction(25)) as writer:
            writer.write(pan_frames[0][:100])
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_writer_without_frames_is_an_error(tmp_path):
    out = tmp_path / "empty.mp4"
    with pytest.raises(FFmpegError, match="no frames"):
        with VideoWriter(out, 320, 180, Fraction(25)):
            pass
    assert list(tmp_path.iterdir()) == []


# --- bad inputs -----------------------------------------------------------------------------------


def _one_line_error(error: MediaError, path: Path) -> str:
    text = str(error)
    assert "\n" not in text and text.startswith(f"{path}: ")
    # The CLI maps these to "bad input" (exit 2) or "truncated input" (exit 4).
    assert isinstance(error, FileError) and error.exit_code in (2, 4)
    return text


def test_missing_empty_and_non_video_files(tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(MediaNotFoundError) as err:
        probe(missing)
    assert "not found" in _one_line_error(err.value, missing)

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableMediaError) as err:
        probe(empty)
    assert "empty file" in _one_line_error(err.value, empty)

    text = tmp_path / "notes.mp4"
    text.write_text("These are my holiday notes, not a video.\n" * 20)
    with pytest.raises(UnreadableMediaError) as err:
        read_frames(text)
    assert "not a readable video" in _one_line_error(err.value, text)


@pytest.mark.parametrize("suffix", ["m4a", "mp4"])
def test_audio_only_file(tmp_path, suffix):
    audio = tmp_path / f"tone.{suffix}"
    ffmpeg("-i", PAN, "-vn", "-c:a", "copy", audio)
    with pytest.raises(NoVideoStreamError) as err:
        probe(audio)
    assert "no video stream" in _one_line_error(err.value, audio)


def _cut_in_half(path: Path, folder: Path) -> Path:
    data = path.read_bytes()
    half = folder / f"half_{path.name}"
    half.write_bytes(data[: len(data) // 2])
    return half


def test_half_an_mp4_without_its_index_is_unreadable(tmp_path):
    # Without +faststart the moov index is written last, so half a file has none.
    plain = tmp_path / "plain.mp4"
    ffmpeg("-i", PAN, "-c", "copy", plain)
    half = _cut_in_half(plain, tmp_path)
    with pytest.raises(UnreadableMediaError) as err:
        probe(half)
    text = _one_line_error(err.value, half)
    assert "truncated" in text and "moov" in text


@pytest.mark.parametrize("kind", ["faststart.mp4", "mkv", "ts"])
def test_truncated_video_yields_frames_then_raises(tmp_path, kind):
    full = tmp_path / f"full.{kind}"
    if kind == "faststart.mp4":
        full = PAN  # VideoWriter puts the index first, so half the file still opens
    else:
        ffmpeg("-i", PAN, "-c", "copy", full)
    half = _cut_in_half(full, tmp_path)
    info = probe(half)
    assert info.truncated
    reader = read_frames(half, info=info)
    frames = []
    with pytest.raises(TruncatedVideoError) as err:
        for frame in reader:
            frames.append(frame)
    assert 10 < len(frames) < 75 and err.value.frames_read == len(frames)
    assert isinstance(err.value, TruncatedInputError) and err.value.exit_code == 4
    assert "truncated" in _one_line_error(err.value, half)
