"""A private Ray cluster for the tests: a head on 127.0.0.1 only, torn down by the tests, and by a
watchdog when the test process dies first (so it always stops by itself).

    python tests/ray_cluster.py --watch PID PORT   # the watchdog: waits for PID, then tears down
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0",
           # Ray replaces 127.0.0.1 by this machine's address unless told it is a one-machine cluster.
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process, from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry.name)] = (ppid, cmdline)
    return out


def cluster_pids(port: int) -> set[int]:
    """The head's processes (they name its GCS port) and all their descendants (the workers)."""
    table = _processes()
    marks = (f"127.0.0.1:{port}", f"--gcs_server_port={port}", f"--port={port} ")
    found = {pid for pid, (_, cmd) in table.items() if any(m in cmd + " " for m in marks)}
    found.discard(os.getpid())
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        grew = bool(children)
        found |= children
    return found


def stop(port: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = cluster_pids(port)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + 5
        while pids and time.time() < deadline:
            pids = {p for p in pids if Path(f"/proc/{p}").exists()}
            time.sleep(0.2)


def env_with_token(folder: Path) -> dict[str, str]:
    """RAY_ENV plus token authentication with a token of the tests' own (the head and every
    driver get the same), whatever ~/.ray holds on this machine."""
    token = folder / "auth_token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
    return {**RAY_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


def start(ray_bin: Path, env: dict[str, str], cpus: int = 2) -> tuple[str, int, str]:
    """Start a head bound to 127.0.0.1 with `cpus` CPUs and a watchdog on this process;
    (address, GCS port, state API address). `ray start` records its head as this machine's
    cluster (Ray's ray_current_cluster file), which would outlive the torn-down head and send
    `--ray-address auto` to a dead address: the record is put back as it was at once."""
    from nstvid.pipeline.cluster.connect import record_path

    port, dashboard = free_port(), free_port()
    env = {**os.environ, **env}
    record = record_path()
    before = record.read_bytes() if record.is_file() else None
    subprocess.run([str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    f"--num-cpus={cpus}", "--num-gpus=0", "--disable-usage-stats",
                    # the dashboard serves Ray's state API, which the tests find workers with
                    "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                    f"--ray-client-server-port={free_port()}"],
                   env=env, check=True, capture_output=True, timeout=120)
    if record.is_file() and record.read_text().strip() == f"127.0.0.1:{port}":  # ours, not another's since
        if before is None:
            record.unlink()
        else:
            record.write_bytes(before)
    subprocess.Popen([sys.executable, __file__, "--watch", str(os.getpid()), str(port)],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return f"127.0.0.1:{port}", port, f"http://127.0.0.1:{dashboard}"


if __name__ == "__main__" and sys.argv[1:2] == ["--watch"]:
    watched, watched_port = int(sys.argv[2]), int(sys.argv[3])
    while Path(f"/proc/{watched}").exists():
        time.sleep(2)
    stop(watched_port)
