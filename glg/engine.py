"""Clip-parallel work for the extract, annotate and prepare stages: one function applied to
every clip, on workers of this machine (`local`, the default: processes, or prepare's threads)
or on Ray actors across a cluster (`ray`), the results coming back in clip order either way,
so a stage's bytes do not depend on the engine, the number of workers or which worker finishes
first.

Why Ray and not another engine: it is already a dependency (Flower's simulation runs on it);
an actor is a long-lived worker process that keeps what its `setup` built, such as dlib's
detector and predictor, loaded once per worker and not once per clip; and its object store
hands back results of any size (annotation tables) without files. The cluster is Ray's own:
`ray start` on each machine, and `RAY_ADDRESS` names it to the stage (README, "Past one
machine"). Workers read their inputs and write their spool files by absolute path, so on a
cluster the data folder must be on storage that every machine mounts at the same path.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing.pool
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from typing import Any, Literal

from glg.errors import GlgError

Engine = Literal["local", "ray"]
RAY_ADDRESS = "RAY_ADDRESS"  # Ray's own variable naming the cluster to join
AHEAD = 4  # jobs in flight past the one awaited, per worker: bounds held jobs and results

# Ray (>= 2.43) starts its workers through `uv run` in the driver's working folder when the
# driver itself ran under `uv run` (as `make` runs everything); from a folder outside the
# project that finds no project and a Python without Ray, and every actor dies at start (CI,
# the engine test). Workers run the driver's own interpreter instead. Ray reads the switch
# when it is imported: set here, before anything imports Ray.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


@contextlib.contextmanager
def clip_results(work: Callable[[Any], Any], jobs: Iterable, engine: Engine, workers: int,
                 setup: Callable[[], None],
                 local_pool: Callable[[int], multiprocessing.pool.Pool],
                 name: str, start_here: bool = False) -> Iterator[Iterator]:
    """`work(job)` for every job, yielded in job order, on `workers` local processes
    (`local_pool(n)` makes them), Ray actors (each runs `setup` once) or, for one worker, this
    process (after `setup`). `jobs` may be a generator: it is drawn at most `AHEAD` x workers
    jobs past the result awaited, so a caller can stream jobs from a dataset of any size. The
    workers start on entering, before the caller starts any thread (forking a threaded
    process can hang), and stop on leaving; `name` is the params section, for messages.
    `start_here` (jobs a `Sequence`): for a `local_pool` whose workers fork from a server, not
    from this process, this process works through the first jobs while they start
    (`_StartingPool`)."""
    if isinstance(jobs, Sized):
        workers = min(workers, len(jobs))
    workers = max(1, workers)
    if engine == "ray":
        with _ray_session(workers, name) as ray:
            actor = ray.remote(num_cpus=1)(_ClipWorker)
            actors = [actor.remote(setup, work) for _ in range(workers)]
            try:
                yield _in_order(ray, actors, jobs)
            finally:
                for a in actors:
                    ray.kill(a)
    elif workers > 1 and start_here:
        starting = _StartingPool(local_pool, workers, work, jobs, name)
        try:
            yield starting.results(setup)
        finally:
            starting.close()
    elif workers > 1:
        pool = local_pool(workers)
        try:
            yield _in_order_local(pool, work, jobs, AHEAD * workers, name)
        finally:
            pool.terminate()  # every result is in (or the run failed): stop the workers
            pool.join()
    else:
        setup()
        yield map(work, jobs)


def _in_order_local(pool: multiprocessing.pool.Pool, work: Callable[[Any], Any], jobs: Iterable,
                    ahead: int, name: str) -> Iterator:
    """Each job's result in job order, at most `ahead` jobs drawn past the one awaited (the
    pool's own `imap` draws every job at once)."""
    alive = _Alive(pool, name)
    pending: collections.deque = collections.deque()
    for job in jobs:
        pending.append(pool.apply_async(work, (job,)))
        if len(pending) > ahead:
            yield alive.get(pending.popleft())
    while pending:
        yield alive.get(pending.popleft())


class _Alive:
    """Waits on a pool's results while watching its workers. A pool replaces a worker that
    dies (a crash in native code, the out-of-memory killer) but never returns the job it held,
    so a plain wait would hang for ever: a death stops the run in one line instead."""

    def __init__(self, pool: multiprocessing.pool.Pool, name: str):
        self.workers, self.name = list(pool._pool), name  # the processes the pool started

    def get(self, result: multiprocessing.pool.AsyncResult) -> Any:
        while not result.ready():
            self.check()
            result.wait(0.2)
        return result.get()

    def results(self, results: multiprocessing.pool.IMapIterator) -> Iterator:
        while True:
            try:
                yield results.next(timeout=0.2)
            except multiprocessing.TimeoutError:
                self.check()
            except StopIteration:
                return

    def check(self) -> None:
        for worker in self.workers:
            code = worker.exitcode
            if code is not None:
                how = (f"killed by {signal.Signals(-code).name}" if code < 0
                       else f"exit code {code}")
                raise GlgError(f"{self.name}: worker process {worker.pid} died ({how}) with "
                               "clips in flight (a crash in native code, or the out-of-memory "
                               "killer); the run stopped, its outputs incomplete")


class _StartingPool:
    """Jobs in job order: this process takes them one at a time while `local_pool(workers)`
    starts in a thread; once the pool is up, it takes every job not begun here. Workers forked
    from a server are ready only after the server's imports (extract: 0.27 s, a tenth of its
    run on the six real clips), and this process's core would idle meanwhile. The thread must
    not fork this process (it is threaded by then): `local_pool` starts its workers from a
    server."""

    def __init__(self, local_pool: Callable[[int], multiprocessing.pool.Pool], workers: int,
                 work: Callable[[Any], Any], jobs: Sequence, name: str):
        self.work, self.jobs, self.name = work, jobs, name
        self.lock = threading.Lock()
        self.begun = 0  # jobs this process has begun, the first ones
        self.pool: multiprocessing.pool.Pool | None = None  # once up, it has jobs[begun:]
        self.pool_results: Iterator = iter(())
        self.failure: BaseException | None = None  # of the pool's start, raised by `results`
        self.thread = threading.Thread(target=self._start, args=(local_pool, workers),
                                       name="pool-start", daemon=True)
        self.thread.start()

    def _start(self, local_pool: Callable[[int], multiprocessing.pool.Pool],
               workers: int) -> None:
        try:
            pool = local_pool(workers)
        except BaseException as err:
            self.failure = err
            return
        with self.lock:
            self.pool = pool
            if self.begun < len(self.jobs):
                self.pool_results = _Alive(pool, self.name).results(
                    pool.imap(self.work, self.jobs[self.begun:]))

    def _take(self) -> int | None:
        """The index of the next job for this process, or None once the pool has the rest."""
        with self.lock:
            if self.pool is not None or self.failure or self.begun == len(self.jobs):
                return None
            self.begun += 1
            return self.begun - 1

    def results(self, setup: Callable[[], None]) -> Iterator:
        setup()
        while (index := self._take()) is not None:
            yield self.work(self.jobs[index])
        self.thread.join()
        if self.failure is not None:
            raise self.failure
        yield from self.pool_results

    def close(self) -> None:
        """Stop the workers once the pool is up: every result is in, or the run failed."""
        self.thread.join()
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


class _ClipWorker:
    """One Ray actor (a worker process with one CPU): `setup` once, then `work` per job."""

    def __init__(self, setup: Callable[[], None], work: Callable[[Any], Any]):
        setup()
        self.work = work

    def run(self, job: Any) -> Any:
        return self.work(job)


def _in_order(ray, actors: list, jobs: Iterable) -> Iterator:
    """Each job's result in job order; a free actor takes the next job, at most
    `AHEAD` x actors jobs past the one awaited, so drawn jobs and finished results wait in
    bounded number."""
    jobs = iter(jobs)
    idle, pending, finished = list(actors), {}, {}  # pending: ObjectRef -> (job, actor)
    submitted = index = 0  # jobs submitted; the index of the result awaited
    drawn_all = False
    while True:
        while not drawn_all and idle and submitted - index < AHEAD * len(actors):
            job = next(jobs, _NO_JOB)
            if job is _NO_JOB:
                drawn_all = True
                break
            actor = idle.pop()
            pending[actor.run.remote(job)] = (submitted, actor)
            submitted += 1
        if index == submitted:  # nothing in flight, so every job was drawn and yielded
            return
        if index in finished:
            yield ray.get(finished.pop(index))
            index += 1
            continue
        (ready,), _ = ray.wait(list(pending), num_returns=1)
        job, actor = pending.pop(ready)
        finished[job] = ready
        idle.append(actor)


_NO_JOB = object()


@contextlib.contextmanager
def _ray_session(workers: int, name: str):
    """Ray, joined to the cluster `RAY_ADDRESS` names or, without it, to a private Ray instance
    started on this machine with `workers` CPUs (never a cluster found by guessing); a
    session this process did not start is used as it is and left running."""
    import ray  # here, not at the top: Ray's import costs ~0.5 s that a local run never needs

    address = os.environ.get(RAY_ADDRESS)
    started = not ray.is_initialized()
    if started:
        options = dict(address=address) if address else dict(
            address="local", num_cpus=workers, include_dashboard=False,
            object_store_memory=100 * 2**20)  # results are small: the spool files hold frames
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Tip: In future versions of Ray")  # GPU env vars
            try:
                ray.init(**options, logging_level=logging.WARNING)
            except ConnectionError as err:
                raise GlgError(f"{RAY_ADDRESS}={address}: no Ray cluster answers there "
                               f"({err}); start one with `ray start --head`") from None
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        nodes = sum(node["Alive"] for node in ray.nodes())
        where = f"Ray at {ray.get_runtime_context().gcs_address} ({nodes} nodes, {cpus} CPUs)"
        if workers > cpus:
            raise GlgError(f"{name}.workers: {workers} Ray actors of one CPU each, but {where} "
                           f"has too few CPUs")
        print(f"{name}: {workers} Ray actors on {where}", file=sys.stderr)
        yield ray
    finally:
        if started:
            ray.shutdown()
