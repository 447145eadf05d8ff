"""The folder job's bookkeeping on its own: the manifest journal (replay, a line cut by a kill,
compaction) and the output-folder lock (live, stale, reused pid, other host, cut short)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from nstvid.pipeline.errors import LockedError
from nstvid.pipeline.folder import manifest as manifest_module
from nstvid.pipeline.folder.manifest import JOURNAL_NAME, MANIFEST_NAME, Manifest
from nstvid.pipeline.lock import LOCK_NAME, FolderLock, _boot_id, _proc_start
from nstvid.pipeline.progress import Message


def entry(status: str, n: int) -> dict:
    return {"status": status, "output": f"f{n}.png", "settings": "abc", "size": n, "mtime_ns": n, "sha256": "0",
            **({"seconds": 1.0} if status == "done" else {})}


def start(manifest: Manifest, n: int) -> None:
    manifest.started(f"f{n}.png", output=f"f{n}.png", settings="abc", size=n, mtime_ns=n, sha256="0")


def test_journal_replays_records_and_ignores_a_line_cut_short(tmp_path):
    path = tmp_path / MANIFEST_NAME
    first = Manifest(path)
    for n in range(3):
        start(first, n)
    first.done("f1.png", 1.0)
    first.close()  # killed before save(): only the journal holds the run
    assert not path.exists()
    journal = tmp_path / JOURNAL_NAME
    assert len(journal.read_text().splitlines()) == 4
    with open(journal, "a") as f:
        f.write('{"rel": "f2.png", "entry": {"status": "do')  # the kill cut this line
    again = Manifest(path)
    assert again.entries == {"f0.png": entry("started", 0), "f1.png": entry("done", 1), "f2.png": entry("started", 2)}
    assert again.changed  # the replayed journal is folded in at the next save
    again.save()
    again.close()
    assert not journal.exists()
    assert json.loads(path.read_text())["files"] == again.entries
    assert Manifest(path).entries == again.entries and not Manifest(path).changed


def test_journal_is_compacted_into_the_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "JOURNAL_COMPACT_EVERY", 3)
    path = tmp_path / MANIFEST_NAME
    m = Manifest(path)
    for n in range(4):
        start(m, n)  # a journal line each
    m.close()
    on_disk = json.loads(path.read_text())["files"]
    assert sorted(on_disk) == ["f0.png", "f1.png", "f2.png"]  # compacted after the third record
    assert len((tmp_path / JOURNAL_NAME).read_text().splitlines()) == 1  # the fourth, since
    assert sorted(Manifest(path).entries) == ["f0.png", "f1.png", "f2.png", "f3.png"]


def test_unreadable_manifest_warns_and_starts_afresh(tmp_path):
    path = tmp_path / MANIFEST_NAME
    path.write_text("{ not json")
    events = []
    assert Manifest(path, events.append).entries == {}
    assert len(events) == 1 and events[0].level == "warning" and str(path) in events[0].text


def write_lock(folder, **fields) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": "earlier", "boot_id": _boot_id(),
            "proc_start": _proc_start(os.getpid()), **fields}
    (folder / LOCK_NAME).write_text(json.dumps(info) + "\n")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_lock_holder_keeps_others_out_and_release_frees_the_folder(tmp_path):
    held = FolderLock(tmp_path)
    held.acquire()
    info = json.loads((tmp_path / LOCK_NAME).read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    with pytest.raises(LockedError) as locked:
        FolderLock(tmp_path).acquire()  # flock-ed by `held`
    assert f"pid {os.getpid()}" in str(locked.value)
    held.release()
    assert not (tmp_path / LOCK_NAME).exists()
    again = FolderLock(tmp_path)
    again.acquire()
    again.release()


@pytest.mark.parametrize("case", ["dead pid", "pid reused", "cut short"])
def test_stale_locks_are_taken_over_with_a_warning(tmp_path, case):
    if case == "dead pid":
        write_lock(tmp_path, pid=dead_pid())
    elif case == "pid reused":
        if not _proc_start(os.getpid()):
            pytest.skip("no /proc: process start times are unknown here")
        write_lock(tmp_path, proc_start="1")  # our pid, but another process's start time
    else:
        (tmp_path / LOCK_NAME).write_text('{"pid": ')  # the holder was killed while writing it
    events = []
    lock = FolderLock(tmp_path)
    lock.acquire(events.append)
    warnings = [e.text for e in events if isinstance(e, Message) and e.level == "warning"]
    assert len(warnings) == 1 and "took over a stale lock" in warnings[0], events
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_a_lock_from_another_host_or_a_live_process_is_respected(tmp_path):
    write_lock(tmp_path, host="render-node-7", pid=dead_pid())  # cannot check another host's pids
    with pytest.raises(LockedError) as locked:
        FolderLock(tmp_path).acquire()
    assert "render-node-7" in str(locked.value)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(tmp_path, pid=sleeper.pid, proc_start=_proc_start(sleeper.pid))
        with pytest.raises(LockedError):
            FolderLock(tmp_path).acquire()  # alive on this host, same boot, same process
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (tmp_path / LOCK_NAME).exists()  # a refused run leaves the holder's lock alone
