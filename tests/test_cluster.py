"""--engine ray through the real command, on a real Ray cluster the tests start on 127.0.0.1 (two
CPUs, token authentication with a token of the tests' own) and tear down; a watchdog stops it if
the test process dies first. The cluster start costs about 10 s, the workers' start about 10 s per
run; the tests share one cluster and run in order on one pytest worker."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

import ray_cluster
from conftest import (
    CONTENT,
    CUT,
    REALSHORT,
    SAMPLES,
    STYLE,
    clip,
    codes,
    command,
    count_frames,
    log,
    nstvid,
    nstvid_env,
    said,
)
from metrics import e_warp
from nstvid.pipeline.media.video import probe, read_frames, run_ffmpeg

pytest.importorskip("ray", reason="the Ray tests need the extra: pip install '.[ray]'")
pytestmark = pytest.mark.xdist_group("ray")
RAY_BIN = Path(sys.executable).with_name("ray")
QUICK = ["--style", STYLE, "--size", "64", "--scales", "1", "--iterations", "4", "--frame-iterations", "3"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(GCS address, state API address, environment for the commands)."""
    env = ray_cluster.env_with_token(tmp_path_factory.mktemp("ray-token"))
    address, port, state_api = ray_cluster.start(RAY_BIN, env, cpus=2)
    try:
        yield address, state_api, {**os.environ, **env}
    finally:
        ray_cluster.stop(port)


def run(args, env, cache_dir, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    return nstvid(nstvid_env(cache_dir, env), *args, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Images of two working sizes, one file that passes the walk but does not decode (it fails on
    a worker), and a short real clip with sound."""
    root = tmp_path_factory.mktemp("ray-tree")
    (root / "photos").mkdir()
    (root / "photos" / "chelsea.png").write_bytes(CONTENT.read_bytes())
    (root / "astronaut.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (root / "broken.png").write_bytes(CONTENT.read_bytes()[:300])  # a PNG header, then nothing
    clip(root, REALSHORT, 10, "clip.mp4")
    return root


def test_folder_on_ray_matches_local(tree, cluster, tmp_path, cache_dir):
    """The same tree through --engine ray (2 CPU workers) and --engine local on two device workers:
    same exit code and report, images equal to float rounding, and the video, split into two pieces
    (with a lead-in) by both, with the same frames (to float rounding), rate and sound, and within
    1.1x of the local run's E_warp."""
    address, _, env = cluster
    outs = {}
    for engine in ("ray", "local"):
        out = tmp_path / engine
        # The local run on two device workers plans the clip as the Ray run does (two pieces, a seam).
        extra = (["--engine", "ray", "--ray-address", address, "--ray-workers", "2"] if engine == "ray"
                 else ["--devices", "cpu,cpu"])
        r = run([tree, *QUICK, "-o", out, "--report", tmp_path / f"{engine}.json", "--log-format", "json",
                 *extra], env, cache_dir)
        assert r.returncode == 1, r.stderr  # the broken file
        outs[engine] = (out, json.loads((tmp_path / f"{engine}.json").read_text()), r.stdout)
    (ray_out, ray_report, ray_log), (local_out, local_report, _) = outs["ray"], outs["local"]
    keys = ("path", "status", "output", "kind")
    assert [{k: f[k] for k in keys} for f in ray_report["files"]] == [
        {k: f[k] for k in keys} | {"output": f["output"].replace(str(local_out), str(ray_out))}
        for f in local_report["files"]]
    by_path = {Path(f["path"]).name: f for f in ray_report["files"]}
    assert by_path["broken.png"]["status"] == "failed" and by_path["broken.png"]["node"] == "127.0.0.1"
    assert "decode" in by_path["broken.png"]["error"]
    for name in ("chelsea.png", "astronaut.png"):
        record = by_path[name.replace("astronaut.png", "astronaut.jpg")]
        assert record["node"] == "127.0.0.1" and record["retries"] == 0
        rel = Path(record["output"]).relative_to(ray_out)
        a, b = (cv2.imread(str(root / rel)).astype(np.float64) for root in (ray_out, local_out))
        assert a.shape == b.shape
        # One worker thread against two: float summation order only, amplified a little by L-BFGS.
        assert np.abs(a - b).mean() < 2.0, (name, np.abs(a - b).mean())
    video_record = by_path["clip.mp4"]
    assert video_record["node"] == "127.0.0.1" and len(video_record["worker"].split(", ")) == 2, video_record
    lines = [json.loads(line) for line in ray_log.splitlines() if line.startswith("{")]
    done = [x for x in lines if x.get("status") == "done" and x["path"].endswith(".png")]
    assert done and all(x["node"] == "127.0.0.1" and x["worker"] for x in done)
    # The whole job's count: two images, the broken file and the video, as each comes back.
    tallies = [(x["files_done"], x["files_total"]) for x in lines if "files_done" in x]
    assert tallies == [(k, 4) for k in range(1, 5)], tallies
    assert said(ray_log, "video.pieces", frames=10, on="2 Ray workers", pieces=[[1, 5], [6, 10]], lead_ins=[0, 5])
    # Progress as a local run's: the estimate from a trial on a worker, then every frame once, as
    # the workers finish them (not a burst per segment: each piece here is one segment).
    estimates = [x for x in lines if "estimate_seconds" in x and x.get("units") == 10]
    assert len(estimates) == 1 and estimates[0]["estimate_seconds"] > 0, estimates
    frames = [x for x in lines if "frame" in x]
    assert [x["frame"] for x in frames] == list(range(1, 11)) and all(x["total"] == 10 for x in frames), frames
    times = [datetime.fromisoformat(x["time"]).timestamp() for x in frames]
    bursts = 1 + sum(b - a > 0.1 for a, b in zip(times, times[1:]))
    assert bursts >= 3, times
    video = {e: probe(o / "clip.mp4") for e, o in (("ray", ray_out), ("local", local_out))}
    assert count_frames(ray_out / "clip.mp4") == count_frames(local_out / "clip.mp4") == 10
    assert video["ray"].fps == video["local"].fps and video["ray"].has_audio and video["local"].has_audio
    a, b = (np.stack(list(read_frames(o / "clip.mp4"))).astype(np.float64) for o in (ray_out, local_out))
    assert np.abs(a - b).mean() < 2.0, np.abs(a - b).mean()
    e_ray = e_warp(tree / "clip.mp4", ray_out / "clip.mp4")["e_warp"]
    e_local = e_warp(tree / "clip.mp4", local_out / "clip.mp4")["e_warp"]
    assert e_ray <= 1.1 * e_local, (e_ray, e_local)  # the same plan on another executor


def _worker_pids(state_api: str, env: dict) -> list[int]:
    """The live Worker actors' processes, from Ray's state API (in a process of its own: Ray reads
    the token settings once per process)."""
    query = ("import json, sys; from ray.util.state import list_actors; print(json.dumps([a.pid for a in "
             "list_actors(address=sys.argv[1], filters=[('class_name', '=', 'Worker'), ('state', '=', 'ALIVE')], "
             "timeout=10, raise_on_missing_output=False) if a.pid]))")
    r = subprocess.run([sys.executable, "-c", query, state_api], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _start_then_kill_a_worker(args, marker: str, state_api: str, env: dict, cache_dir):
    """Start the command (a JSON log); once a log line has the code `marker` (the first units handed
    out), wait 3 s, well inside the first unit, and SIGKILL one of the two workers. Returns
    (process, lines read)."""
    proc = subprocess.Popen(command(*args), env=nstvid_env(cache_dir, env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if codes(line) == [marker]:
            break
    assert proc.poll() is None, "".join(seen) + proc.stderr.read()
    time.sleep(3)
    pids = _worker_pids(state_api, env)
    assert len(pids) == 2, pids
    os.kill(pids[0], signal.SIGKILL)
    return proc, seen


@pytest.mark.cluster_slow  # about 35 s alone on 2 cores: `make test-cluster` (docs/cluster.md)
def test_worker_killed_mid_job_and_a_second_run(cluster, tmp_path, cache_dir):
    """SIGKILL of a worker (found through Ray's state API) while it holds a unit: the unit runs
    again, the job exits 0 with every output complete, and the report shows the retry. The same
    command started meanwhile finds the folder locked (exit 3)."""
    address, state_api, env = cluster
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(4):
        (photos / f"chelsea{k}.png").write_bytes(CONTENT.read_bytes())
    out, report = tmp_path / "out", tmp_path / "report.json"
    args = [photos, "--style", STYLE, "--size", "96", "--scales", "1", "--iterations", "40", "-o", out,
            "--report", report, "--engine", "ray", "--ray-address", address, "--ray-workers", "2",
            "--log-format", "json"]
    proc, _ = _start_then_kill_a_worker(args, "ray.pool", state_api, env, cache_dir)
    second = run(args, env, cache_dir)
    assert second.returncode == 3, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and str(out) in second.stderr
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout + stderr + (report.read_text() if report.exists() else '')
    assert said(stdout, "ray.worker_lost", method="images"), stdout
    records = json.loads(report.read_text())["files"]
    assert [r["status"] for r in records] == ["done"] * 4
    assert sum(r["retries"] for r in records) >= 1 and any(r.get("lost_workers") for r in records)
    for k in range(4):
        picture = cv2.imread(str(out / f"chelsea{k}.png"))
        assert picture is not None and picture.shape[1] == 96
    assert not list(out.rglob("*.part"))


@pytest.mark.cluster_slow  # `make test-cluster`, with the test above
def test_worker_killed_mid_segment_redoes_that_segment(cluster, tmp_path, cache_dir):
    """A video on 2 Ray workers in segments of 3 frames: SIGKILL of a worker while it holds a
    segment; the pool runs that segment again, the log says so, and the output has every frame."""
    address, state_api, env = cluster
    source = clip(tmp_path, REALSHORT, 12, "clip.mp4")
    config = tmp_path / "segments.toml"
    config.write_text("segment_frames = 3\n")
    out = tmp_path / "out.mp4"
    args = [source, "--style", STYLE, "--size", "64", "--scales", "1", "--iterations", "30",
            "--frame-iterations", "20", "-o", out, "--config", config, "--engine", "ray", "--ray-address", address,
            "--ray-workers", "2", "--log-format", "json"]
    proc, seen = _start_then_kill_a_worker(args, "video.pieces", state_api, env, cache_dir)
    stdout, stderr = proc.communicate(timeout=600)
    stdout = "".join(seen) + stdout
    assert proc.returncode == 0, stdout + stderr
    assert said(stdout, "ray.worker_lost", method="segment") and said(stdout, "ray.segment_retried", retries=1), stdout
    assert count_frames(out) == 12


@pytest.mark.cluster_slow  # `make test-cluster`, with the tests above
def test_driver_killed_then_run_again_redoes_only_the_segments_not_stored(cluster, tmp_path, cache_dir):
    """The driver SIGKILLed once it has stored a segment (segments of 3 frames, 2 Ray workers): the
    same command again takes the stored segments (the log says how many) and runs only the rest;
    the output has every frame, once, with its sound."""
    address, _, env = cluster
    source = clip(tmp_path, REALSHORT, 12, "clip.mp4")
    config = tmp_path / "segments.toml"
    config.write_text("segment_frames = 3\n")
    out = tmp_path / "out.mp4"
    records = tmp_path / ".out.mp4.nstvid-work" / "segments.json"
    args = [source, "--style", STYLE, "--size", "64", "--scales", "1", "--iterations", "20",
            "--frame-iterations", "10", "-o", out, "--config", config, "--engine", "ray", "--ray-address", address,
            "--ray-workers", "2", "--log-format", "json"]
    proc = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=nstvid_env(cache_dir, env))
    deadline = time.time() + 300
    while time.time() < deadline and not (records.is_file() and any(
            r.get("file") for r in json.loads(records.read_text() or "{}").values())):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    proc.communicate(timeout=60)
    stored = sum(1 for name in json.loads(records.read_text()) if name.startswith("p"))  # not the seam
    assert not out.exists() and stored >= 1
    r = run(args, env, cache_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    (found,) = said(r.stdout, "video.segments_stored", stored=stored)
    assert found["to_run"] == found["segments"] - stored, found
    assert found["to_run"] >= 1, found  # the kill came before the end
    assert count_frames(out) == 12 and probe(out).has_audio


_SCAN_SPLIT = """
import json, sys, time
from pathlib import Path
from nstvid.pipeline.cluster.pool import Cluster
from nstvid.pipeline.cluster.video import RayExecutor
from nstvid.pipeline.prepare import prepare
from nstvid.pipeline.settings import RunOptions, Settings
from nstvid.pipeline.video.clip import open_clip, scan
from nstvid.pipeline.video.workdir import open_work

source, address, style, output = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
settings = Settings(styles=(style,), size=32, scales=1, iterations=1)
styles = prepare(settings).styles
cluster = Cluster(RunOptions(engine="ray", ray_address=address, ray_workers=2), settings)
try:
    executor = RayExecutor(cluster.pool(styles), styles)
    clip = open_clip(source)
    work = open_work(clip, output, settings, lambda event: None)
    serial = scan(clip)
    runs = {}
    for transport in ("in place", "object store"):
        if transport == "object store":  # as on workers that cannot read the driver's path
            executor.pool.reads_same_file = lambda path, sha: False
            executor.sources.clear()
        messages = []  # the log lines' codes and fields
        frames, scores, truncated = executor.scan(clip, work,
                                                  lambda event: messages.append({"code": event.code, **event.fields}))
        runs[transport] = {"frames": frames, "same_scores": scores == serial[1], "messages": messages,
                           "truncated": truncated is not None}
    print(json.dumps({"serial": serial[0], "serial_scores": len(serial[1]), "runs": runs,
                      "sha": work.key["input"]}))
finally:
    cluster.close()
"""


@pytest.mark.cluster_slow  # about 25 s on 2 cores: `make test-cluster`
def test_the_scan_is_split_over_the_workers_and_gives_the_serial_count(cluster, tmp_path, cache_dir):
    """A 4,200-frame clip of many shots (cut.mp4 looped, 64x36): the count and the scene-cut scores
    from two ranges decoded by the two Ray workers, each from a seek, equal the one decode's in the
    driver, to the bit; with the input read where it is, and sent through the object store (as to
    workers that cannot read the driver's path), written once on the node."""
    address, _, env = cluster
    source = tmp_path / "long.mp4"
    run_ffmpeg(["-y", "-stream_loop", "-1", "-i", str(CUT), "-vf", "scale=64:36", "-frames:v",
                "4200", "-an", "-c:v", "libx264", "-crf", "30", str(source)], path=source)
    r = subprocess.run([sys.executable, "-c", _SCAN_SPLIT, str(source), address, str(STYLE), str(tmp_path / "o.mp4")],
                       capture_output=True, text=True, timeout=600, env={**env, "NSTVID_CACHE_DIR": str(cache_dir)})
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    copy = Path(tempfile.gettempdir()) / f"nstvid-input-{result['sha']}.mp4"
    try:
        assert result["serial"] == 4200 and result["serial_scores"] == 4199
        for transport, found in result["runs"].items():
            assert found["frames"] == 4200 and found["same_scores"] and not found["truncated"], (transport, found)
            assert {"code": "ray.scan_split", "frames": 4200, "ranges": 2} in found["messages"], found
        assert any(m["code"] == "ray.input_sent" and m["path"].endswith("long.mp4")
                   for m in result["runs"]["object store"]["messages"]), result
        assert copy.is_file() and copy.read_bytes() == source.read_bytes()
    finally:
        copy.unlink(missing_ok=True)


def test_unreachable_address_is_one_line_exit_2(tmp_path, cache_dir):
    """For a video and a single image alike (an image runs on a worker too), before any work."""
    port = ray_cluster.free_port()  # nothing listens there
    for source, name in ((REALSHORT, "out.mp4"), (CONTENT, "out.png")):
        started = time.time()
        r = run([source, "--style", STYLE, "-o", tmp_path / name, "--engine", "ray",
                 "--ray-address", f"127.0.0.1:{port}", "--log-format", "json"], dict(os.environ), cache_dir)
        assert r.returncode == 2, r.stderr
        errors = [line for line in log(r.stdout) if line["level"] == "error"]  # JSON: errors on the log's stream
        assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0]["message"] and not r.stderr, r.stdout
        assert "engine.ready" not in codes(r.stdout) and time.time() - started < 60, r.stdout
    assert not list(tmp_path.iterdir())


@pytest.fixture
def stale_record():
    """(environment, record file): Ray's temp folder moved to a fresh short folder ($RAY_TMPDIR;
    a private instance keeps its sockets there, whose paths must stay short) whose record of this
    machine's cluster names a closed 127.0.0.1 port, as a test head torn down without `ray stop`
    leaves it."""
    folder = Path(tempfile.mkdtemp(prefix="nstvid-ray-", dir="/tmp"))
    record = folder / "ray" / "ray_current_cluster"
    record.parent.mkdir()
    record.write_text(f"127.0.0.1:{ray_cluster.free_port()}")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": str(folder)}
    try:
        yield env, record
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.cluster_slow  # a private Ray instance of its own: about 20 s on 2 cores, `make test-cluster`
def test_local_address_starts_its_own_instance_whatever_the_record_says(stale_record, tmp_path, cache_dir):
    """--ray-address local with a stale record: a fresh private instance on 127.0.0.1 (Ray would
    otherwise join the recorded address and retry it for minutes), which stylises the image on a
    worker; the record is left as it was."""
    env, record = stale_record
    before = record.read_text()
    out = tmp_path / "out.png"
    r = run([CONTENT, "--style", STYLE, "-o", out, "--size", "32", "--scales", "1", "--iterations", "2",
             "--engine", "ray", "--ray-address", "local", "--log-format", "json"], env, cache_dir, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert said(r.stdout, "ray.image_done", node="127.0.0.1"), r.stdout
    assert cv2.imread(str(out)).shape[1] == 32
    assert record.read_text() == before


def test_auto_address_names_a_stale_record(stale_record, tmp_path, cache_dir):
    env, record = stale_record
    started = time.time()
    r = run([CONTENT, "--style", STYLE, "-o", tmp_path / "out.png", "--engine", "ray", "--ray-address", "auto"],
            env, cache_dir)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "stale" in lines[0] and str(record) in lines[0] and record.read_text() in lines[0]
    assert time.time() - started < 60


def test_the_test_cluster_leaves_no_record_of_itself(cluster):
    """`ray start` recorded the tests' head as this machine's cluster; the fixture put the record
    back at once, so nothing names the head once it is torn down."""
    from nstvid.pipeline.cluster.connect import record_path

    address, _, _ = cluster
    assert not record_path().is_file() or record_path().read_text().strip() != address


def test_missing_ray_is_one_line_exit_2(tmp_path, cache_dir):
    """Without Ray installed (a `ray` that cannot be imported first on the path)."""
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    r = run([REALSHORT, "--style", STYLE, "-o", tmp_path / "out.mp4", "--engine", "ray"], env, cache_dir)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "pip install '.[ray]'" in r.stderr, r.stderr
