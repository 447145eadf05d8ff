"""The Python API (`import nstvid`): the README's example as written, keyword options, progress
events, typed errors raised before any work, and `python -m nstvid`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nstvid
from conftest import CONTENT, PRECISION, ROOT, STYLE

README = ROOT / "README.md"


def readme_example() -> str:
    """The README's Python example: the first ```python block."""
    match = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README has no ```python example"
    return match.group(1)


def test_readme_example_runs_as_written(tmp_path, cache_dir):
    """Run from a folder holding sample_media/, as a user in the repository would."""
    (tmp_path / "sample_media").symlink_to(ROOT / "sample_media")
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    env = {**os.environ, "NSTVID_CACHE_DIR": str(cache_dir)}
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    photo, clip = tmp_path / "out" / "chelsea_small.png", tmp_path / "out" / "realshort_small.mp4"
    assert photo.is_file() and clip.is_file(), r.stdout
    from nstvid.pipeline.media.video import probe

    assert probe(clip).frame_count == 36 and probe(clip).has_audio
    assert re.search(r"^frame 36/36", r.stdout, re.M), r.stdout  # the progress callback ran
    assert f"{Path('out') / 'realshort_small.mp4'} 36 frames" in r.stdout, r.stdout


def test_keywords_are_config_keys_and_progress_reaches_the_callback(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("NSTVID_CACHE_DIR", str(cache_dir))
    events = []
    out = tmp_path / "cat.png"
    outcome = nstvid.stylise(CONTENT, style=[STYLE], output=out, size=48, scales=1, iterations=4,
                             tolerance=0, style_weight=20, progress=events.append,
                             precision=PRECISION or "auto")
    assert isinstance(outcome, nstvid.ImageOutcome) and outcome.output == out and out.is_file()
    assert outcome.iterations == 4 and outcome.style_loss > 0
    iterations = [e for e in events if isinstance(e, nstvid.Iteration)]
    assert [e.iteration for e in iterations] == [1, 2, 3, 4]
    assert any(isinstance(e, nstvid.Message) and e.text.startswith("device cpu") for e in events)
    job = nstvid.load_job(CONTENT, STYLE, out, style_weight=20, size=48, overwrite=True)
    assert job.settings.style_weight == 20 and job.settings.size == 48 and job.options.overwrite


def test_bad_jobs_raise_typed_errors_before_any_work(tmp_path):
    """Every refusal is a one-line NstvidError subclass naming the culprit, raised by load_job
    before the network is built: no event reaches the callback (building it says "device ...")."""
    events = []
    cases = [
        (dict(input=CONTENT, style=STYLE, output=tmp_path / "out.xyz"), nstvid.OutputError, "out.xyz"),
        (dict(input=CONTENT, style=STYLE, output=tmp_path / "clip.mp4"), nstvid.OutputError, "clip.mp4"),
        (dict(input=ROOT / "sample_media" / "pan.mp4", style=STYLE, output=tmp_path / "pan.png"),
         nstvid.OutputError, "pan.png"),
        (dict(input=tmp_path / "missing.png", style=STYLE), nstvid.InputError, "missing.png"),
        (dict(input=CONTENT, style=tmp_path / "nostyle.jpg"), nstvid.InputError, "nostyle.jpg"),
        (dict(input=CONTENT, style=STYLE, sizee=3), nstvid.UsageError, "sizee"),
        (dict(input=CONTENT, style=STYLE, size="big"), nstvid.UsageError, "size"),
        (dict(input=CONTENT, style=STYLE, device="cuda:7"), nstvid.UsageError, "cuda:7"),
        (dict(input=CONTENT, style=STYLE, weights=str(tmp_path / "vgg.pth")), nstvid.WeightsError, "vgg.pth"),
        (dict(input=CONTENT), nstvid.UsageError, "style"),
        (dict(input=ROOT / "sample_media", style=STYLE), nstvid.UsageError, "-o"),
    ]
    for kwargs, error, words in cases:
        with pytest.raises(error) as raised:
            nstvid.stylise(progress=events.append, **kwargs)
        assert words in str(raised.value) and "\n" not in str(raised.value), (kwargs, raised.value)
        assert isinstance(raised.value, nstvid.NstvidError)
    assert events == []
    assert not list(tmp_path.iterdir())  # nothing written


def test_python_dash_m_runs_the_command():
    r = subprocess.run([sys.executable, "-m", "nstvid", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"nstvid {nstvid.__version__}", r.stdout + r.stderr
