"""The driver's side of the Ray workers: start them, hand out calls, and retry a call whose worker
was lost (kill -9, node gone) on another or restarted actor.

Ray restarts a lost actor by itself (max_restarts); the pool resubmits the call to another worker,
up to MAX_ATTEMPTS times in all, so a unit that kills its worker every time fails alone instead of
forever, and takes the restarted worker back once it answers a ping. An error
raised inside a call (bad input, out of memory) is the call's result, never retried.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..batching import AUTO_CUDA_IMAGE_BATCH
from ..errors import ProcessingError
from ..gatys import scale_sizes
from ..progress import Callback, Message, ignore
from ..settings import RunOptions, Settings
from ..style_targets import StyleSet
from .connect import Shape, connect, shape
from .worker import Worker

MAX_ATTEMPTS = 3  # a call runs at most this often when its worker keeps being lost
REVIVE_WAIT = 600.0  # seconds without any worker before the waiting units are given up


class WorkerLost(ProcessingError):
    """A call's worker was lost MAX_ATTEMPTS times."""


@dataclass
class Call:
    """One call of a Worker method, and where it stands."""

    method: str
    args: tuple
    tag: Any  # the caller's: what the call is for
    attempts: int = 0
    actor: Any = None
    lost: list[str] = field(default_factory=list)  # why each earlier attempt's worker was lost

    @property
    def retries(self) -> int:
        return len(self.lost)


class FrameEvents:
    """A Ray actor that holds the frames the workers finish until the driver takes them: progress
    per frame while a segment runs, not per segment when it returns. Workers put without waiting
    for an answer; the driver takes everything at once, every half second at most, so its cost
    does not grow with the frame rate."""

    def __init__(self):
        self.held: list = []

    def put(self, event) -> None:
        self.held.append(event)

    def take(self) -> list:
        held, self.held = self.held, []
        return held


class Pool:
    """Ray actors of the Worker class (or of worker, a class with its methods: bench/cluster.py's
    pass-through), one call in hand each."""

    def __init__(self, ray, shape: Shape, settings: Settings, sent, progress: Callback = ignore, *,
                 worker: type = Worker):
        self.ray, self.progress = ray, progress
        remote = ray.remote(worker).options(num_gpus=shape.gpus, num_cpus=shape.cpus, max_restarts=-1,
                                            max_task_retries=0)
        # The style pictures go in once, held by this pool for as long as its workers live; each
        # call carries [ref] (Ray resolves a bare ref argument on every call, not one in a list).
        self.sent = [ray.put(sent)]
        self.actors = [remote.remote(settings, shape.threads) for _ in range(shape.workers)]
        self.events = ray.remote(FrameEvents).options(num_cpus=0, max_restarts=-1).remote()
        self.idle = deque(self.actors)
        self.waiting: deque[Call] = deque()  # calls without an actor yet (retries first)
        self.running: dict[Any, Call] = {}  # object ref -> call
        self.targets: dict[tuple[int, int], Any] = {}  # working size -> ref of its targets
        self.reviving: dict[Any, Any] = {}  # ping ref -> a lost worker, back when it answers
        self.lost_since: float | None = None

    @property
    def size(self) -> int:
        return len(self.actors)

    @property
    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    @property
    def has_idle(self) -> bool:
        return bool(self.idle) and not self.waiting

    def put(self, value):
        """Into the object store once; every call that is given the ref shares it."""
        return self.ray.put(value)

    def targets_ref(self, styles: StyleSet, size: tuple[int, int] | None):
        """The style targets of every level a picture of working size (h, w) is optimised at,
        computed once by the driver's styles and put once into the object store (None: size
        unknown, the worker computes its own)."""
        if size is None:
            return self.put({})
        if size not in self.targets:
            levels = scale_sizes(size, styles.settings.scales)
            for level in levels:
                styles.targets(level)
            held = styles.computed_targets()
            self.targets[size] = self.put({level: held[level] for level in levels})
        return self.targets[size]

    def submit(self, method: str, *args, tag: Any = None) -> None:
        self.waiting.append(Call(method, args, tag))
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting and self.idle:
            call = self.waiting.popleft()
            call.actor, call.attempts = self.idle.popleft(), call.attempts + 1
            self.running[getattr(call.actor, call.method).remote(self.sent, *call.args)] = call

    def next_result(self, timeout: float = 0.5) -> tuple[Call, Any] | None:
        """(call, value) of a finished call, value being the method's return or the exception it
        raised (WorkerLost after MAX_ATTEMPTS lost workers); None after timeout without one."""
        self._dispatch()
        if not self.running and not self.reviving:
            return None
        ready, _ = self.ray.wait([*self.running, *self.reviving], num_returns=1, timeout=timeout)
        if not ready:
            self._check_left()
            return None
        if ready[0] in self.reviving:
            self._revived(ready[0])
            return None
        call = self.running.pop(ready[0])
        exceptions = self.ray.exceptions
        try:
            value = self.ray.get(ready[0])
        except (exceptions.RayActorError, exceptions.ActorUnavailableError, exceptions.WorkerCrashedError,
                exceptions.NodeDiedError) as e:
            return self._lost(call, e)
        except exceptions.RayTaskError as e:  # raised by the method itself: the call's result
            value = e.cause if isinstance(e.cause, BaseException) else ProcessingError(str(e).splitlines()[0])
        self.idle.append(call.actor)
        return call, value

    def _lost(self, call: Call, error: BaseException) -> tuple[Call, Any] | None:
        """The call's worker died or is restarting: it rejoins when it answers a ping, and the
        call goes first to the next idle worker, unless it has been tried MAX_ATTEMPTS times."""
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        call.lost.append(f"{type(error).__name__}: {reason}"[:200])
        self._revive(call.actor)
        if call.attempts >= MAX_ATTEMPTS:
            return call, WorkerLost(f"worker lost {call.attempts} times ({call.lost[-1]})")
        self.progress(Message(f"worker lost during {call.method} ({type(error).__name__}): retrying, "
                              f"attempt {call.attempts + 1} of {MAX_ATTEMPTS}", level="warning",
                              code="ray.worker_lost", fields={"method": call.method, "error": type(error).__name__,
                                                              "attempt": call.attempts + 1, "attempts": MAX_ATTEMPTS}))
        self.waiting.appendleft(call)
        self._dispatch()
        return None

    def _revive(self, actor) -> None:
        self.reviving[actor.ping.remote()] = actor
        self.lost_since = self.lost_since or time.monotonic()

    def _revived(self, ref) -> None:
        actor = self.reviving.pop(ref)
        try:
            self.ray.get(ref)
        except self.ray.exceptions.ActorUnavailableError:  # still restarting: ask again shortly
            time.sleep(0.2)
            self._revive(actor)
            return
        except self.ray.exceptions.RayActorError:  # gone for good (Ray gave up restarting it)
            self.actors.remove(actor)
            self.progress(Message(f"a Ray worker is gone for good: {len(self.actors)} left", level="warning"))
            return
        self.idle.append(actor)
        if not self.reviving:
            self.lost_since = None

    def _check_left(self) -> None:
        """Calls waiting, no worker able to take them, and none back within REVIVE_WAIT: give up."""
        if (self.waiting and not self.idle and not self.running and self.lost_since is not None
                and time.monotonic() - self.lost_since > REVIVE_WAIT):
            raise ProcessingError(f"no Ray worker came back within {REVIVE_WAIT:.0f} s; "
                                  f"{len(self.waiting)} unit(s) left undone")

    def reads_same_file(self, path, sha256: str) -> bool:
        """Whether a worker finds this file at this path, with this content (a shared volume, or the
        driver's own machine)."""
        return self.ray.get(self.actors[0].file_sha256.remote(str(path))) == sha256

    def abandon(self, tags) -> None:
        """Forget the calls made for `tags` (a stopped job): their results are never asked for, and
        their workers take new calls once they finish them."""
        for ref, call in list(self.running.items()):
            if any(call.tag is tag for tag in tags):
                del self.running[ref]
                self.idle.append(call.actor)
        self.waiting = deque(call for call in self.waiting if not any(call.tag is tag for tag in tags))

    def take_events(self) -> list:
        """What the workers put into `events` since the last take ([] when the actor does not
        answer within 5 s: progress is not worth holding the job for)."""
        try:
            return self.ray.get(self.events.take.remote(), timeout=5)
        except Exception:  # noqa: BLE001 - restarting, or the node that held it is gone
            return []

    def identities(self) -> list[dict]:
        """Every worker's node, process and device; waits until all have started."""
        return self.ray.get([actor.ping.remote() for actor in self.actors])

    def close(self) -> None:
        """Stop every worker now (the driver alone writes, so nothing of theirs is lost)."""
        for actor in [*self.actors, self.events]:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.running.clear()
        self.waiting.clear()
        self.reviving.clear()


class Cluster:
    """A job's link to the cluster: joined when the job starts (a bad address fails before any
    work), its workers started at the first unit (a rerun with nothing to do starts none), as
    actors of worker (Pool's)."""

    def __init__(self, options: RunOptions, settings: Settings, progress: Callback = ignore, *,
                 worker: type = Worker):
        self.ray = connect(options)
        self.options, self.settings, self.progress, self.worker = options, settings, progress, worker
        self._pool: Pool | None = None

    def pool(self, styles: StyleSet) -> Pool:
        if self._pool is None:
            plan = shape(self.ray, self.options.ray_workers)
            self._pool = Pool(self.ray, plan, self.settings, (styles.pictures, styles.file_hashes), self.progress,
                              worker=self.worker)
            nodes = sorted({i["node"] for i in self._pool.identities()})
            self.progress(Message(f"{plan.describe()}, on {len(nodes)} node(s): {', '.join(nodes)}", code="ray.pool",
                                  fields={"workers": plan.workers, "nodes": nodes}))
        return self._pool

    def image_batch(self) -> int:
        """Images per unit: --batch N, else the workers' kind decides (batching.image_batch's rule
        for the device the workers have, not the driver's)."""
        if self.settings.batch > 0:
            return self.settings.batch
        return AUTO_CUDA_IMAGE_BATCH if self.ray.cluster_resources().get("GPU", 0) else 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self.ray.shutdown()
