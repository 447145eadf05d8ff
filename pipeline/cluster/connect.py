"""Joining a Ray cluster: the optional import, the address, a bounded wait, and the workers' shape.

Ray is an optional extra (`pip install '.[ray]'`) and is imported here only, when a job asks
for --engine ray. An address that cannot be reached is refused after CONNECT_TIMEOUT seconds.
`--ray-address local` starts a private instance on 127.0.0.1 and never reads Ray's record of the
machine's cluster; `auto` reads that record, and says it is stale when nothing answers there.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..settings import RunOptions

INSTALL = "pip install '.[ray]' (in the nstvid folder)"
CONNECT_TIMEOUT = 10.0  # seconds to wait for a named cluster's head to answer


def import_ray():
    """The ray module, or a one-line UsageError naming the install command."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--engine ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def check_installed() -> None:
    """import_ray's error without importing it (connect sets Ray's environment before the import)."""
    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UsageError(f"--engine ray needs Ray, which is not installed: {INSTALL}")


def _answers(host: str, port: int) -> str | None:
    """None when something listens at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as e:
        return e.strerror or str(e) or type(e).__name__


def record_path() -> Path:
    """Where `ray start` records the cluster it started (`ray_current_cluster`), by Ray's own rule
    for its temp folder: $RAY_TMPDIR, else $TMPDIR (Linux), else /tmp; then ray/."""
    base = os.environ.get("RAY_TMPDIR") or (os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None)
    return Path(base or "/tmp") / "ray" / "ray_current_cluster"


def _auto_address() -> tuple[str | None, str]:
    """The cluster `ray start` left on this machine, and where that was read: $RAY_ADDRESS, else
    Ray's record of it (record_path). A record outlives its cluster when the cluster is stopped
    without `ray stop`."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], "$RAY_ADDRESS"
    try:
        return record_path().read_text().strip() or None, f"Ray's record {record_path()}"
    except OSError:
        return None, ""


def _token_available() -> bool:
    """A Ray auth token is set or saved where Ray looks for one."""
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or any(
        Path(p).expanduser().is_file() for p in (os.environ.get("RAY_AUTH_TOKEN_PATH", ""), "~/.ray/auth_token") if p)


def check_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT address (ray:// allowed), None for auto and local; UsageError
    for anything else. No network: load_job checks every job's address this way before work."""
    if address in ("auto", "local"):
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address {address}: expected HOST:PORT, auto or local")
    return host, int(port)


def _check_reachable(address: str) -> str:
    """The host:port to join, refused (UsageError, exit 2) when nothing answers there within
    CONNECT_TIMEOUT: for auto, the recorded address, named as stale when nothing answers."""
    shown, source = address, ""
    if address == "auto":
        address, source = _auto_address()
        if address is None:
            raise UsageError("--ray-address auto: no Ray cluster started on this machine (run `ray start "
                             "--head`, or give --ray-address HOST:PORT, or local for a private one)")
    if source:  # read from $RAY_ADDRESS or Ray's record
        try:
            parsed = check_address(address)
        except UsageError:
            parsed = None
        if parsed is None:
            raise UsageError(f"--ray-address auto: {source} holds {address!r}, not HOST:PORT")
    else:
        parsed = check_address(address)  # given HOST:PORT (local never comes here)
    host, port = parsed
    why = _answers(host, port)
    if why is not None and source.startswith("Ray's record"):
        raise UsageError(f"--ray-address auto: {source} names {address}, where nothing answers ({why}): the "
                         "record is stale, left by a cluster that stopped without `ray stop` (start one with "
                         "`ray start --head`, or use --ray-address local for a private one)")
    if why is not None:
        raise UsageError(f"--ray-address {shown}: no Ray cluster answers at {address}"
                         + (f" (from {source})" if source else "") + f" ({why})")
    return address


def connect(options: RunOptions):
    """Join (or for --ray-address local, start) the cluster; returns the ray module.

    Ray reads its environment at import, so it is set first: no usage reports to Ray's servers,
    the token mode `ray start` picks on this machine, and for a private instance 127.0.0.1 only
    (Ray would otherwise publish this machine's address)."""
    local = options.ray_address == "local"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if _token_available():
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = import_ray()
    if ray.is_initialized():
        return ray
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
    try:
        if local:
            # address="local": a new instance always; without it Ray joins whatever cluster its
            # record names (and spends minutes retrying one that has stopped).
            ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        else:
            ray.init(address=_check_reachable(options.ray_address), **quiet)
    except (ConnectionError, RuntimeError, TimeoutError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"--ray-address {options.ray_address}: cannot join the Ray cluster ({first})") from None
    return ray


@dataclass(frozen=True)
class Shape:
    """How many actors, and what each asks of the cluster."""

    workers: int
    gpus: float  # per actor
    cpus: float  # per actor
    threads: int  # torch CPU threads per actor

    def describe(self) -> str:
        each = "1 GPU" if self.gpus else f"{self.cpus:g} CPU"
        return f"{self.workers} Ray worker{'s' * (self.workers != 1)}, {each} each"


def shape(ray, requested: int) -> Shape:
    """One actor per GPU of the cluster (or `requested` of them); on a CPU-only cluster `requested`
    actors sharing its CPUs (default: one per 4 CPUs)."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if gpus:
        return Shape(requested or gpus, 1.0, 1.0, 0)
    workers = requested or max(1, cpus // 4)
    return Shape(workers, 0.0, cpus / workers, max(1, cpus // workers))
