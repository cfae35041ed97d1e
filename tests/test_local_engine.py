"""The local engine (glg/engine.py): with `start_here`, this process works through the first
jobs while the pool's workers start from a server, and every result still comes back once, in
job order; a generator of jobs is drawn only a bounded way ahead of the results; a worker
that dies stops the run in one line instead of hanging it."""

import multiprocessing
import os
import re
import threading
import time

import pytest

from _jobs import job_and_pid, job_or_die
from glg.engine import AHEAD, clip_results
from glg.errors import GlgError


def late_pool(seconds: float):
    """A pool of workers forked from a fresh server, handed over `seconds` late."""

    def start(workers: int) -> multiprocessing.pool.Pool:
        time.sleep(seconds)
        return multiprocessing.get_context("forkserver").Pool(workers)

    return start


def run(jobs, local_pool, start_here=True):
    with clip_results(job_and_pid, jobs, "local", 2, lambda: None, local_pool, "test",
                      start_here=start_here) as results:
        return list(results)


def test_jobs_begun_here_then_in_the_pool_come_back_once_in_order():
    jobs = list(range(40))
    results = run(jobs, late_pool(0.1))
    assert [job for job, _ in results] == jobs
    here = [pid == os.getpid() for _, pid in results]
    # a prefix ran in this process (the pool's start takes at least 0.1 s, a job 0.02 s) ...
    assert here[0] and not any(here[here.index(False):])
    # ... and the rest in two other processes
    assert len({pid for _, pid in results} - {os.getpid()}) == 2


def test_a_pool_up_after_the_last_job_is_left_unused():
    results = run(list(range(3)), late_pool(0.3))
    assert [job for job, _ in results] == [0, 1, 2]
    assert {pid for _, pid in results} == {os.getpid()}


def test_a_pool_that_cannot_start_fails_the_run():
    def broken(workers):
        raise GlgError("no workers today")

    with pytest.raises(GlgError, match="no workers today"):
        run(list(range(50)), broken)


def test_a_caller_that_stops_early_leaves_no_workers_behind():
    pools = []

    def kept_pool(workers):
        pools.append(late_pool(0.1)(workers))
        return pools[-1]

    with pytest.raises(RuntimeError, match="stop"):
        with clip_results(job_and_pid, list(range(100)), "local", 2, lambda: None, kept_pool,
                          "test", start_here=True) as results:
            for job, _ in results:
                if job == 10:
                    raise RuntimeError("stop")
    (pool,) = pools
    assert all(p.exitcode is not None for p in pool._pool)  # terminated and joined


def test_a_generator_of_jobs_is_drawn_a_bounded_way_ahead_of_the_results():
    """prepare streams its jobs from a dataset of any size: the pool must not draw them all."""
    drawn = []

    def jobs():
        for job in range(40):
            drawn.append(job)
            yield job

    with clip_results(job_and_pid, jobs(), "local", 2, lambda: None,
                      multiprocessing.get_context("forkserver").Pool, "test") as results:
        taken = []
        for job, pid in results:
            assert len(drawn) <= job + 1 + AHEAD * 2  # the awaited job and AHEAD per worker
            taken.append((job, pid))
    assert [job for job, _ in taken] == list(range(40))
    assert len({pid for _, pid in taken}) == 2 and os.getpid() not in {pid for _, pid in taken}


@pytest.mark.parametrize("start_here", [False, True])
def test_a_worker_that_dies_stops_the_run_in_one_line(start_here):
    """A pool replaces a dead worker but never returns its job: waiting on it would hang."""
    outcome = {}

    def run_all():
        jobs = [(k, os.getpid()) for k in range(40)]  # this process runs its jobs; workers die
        try:
            with clip_results(job_or_die, jobs, "local", 2, lambda: None, late_pool(0.0),
                              "test", start_here=start_here) as results:
                outcome["results"] = list(results)
        except GlgError as err:
            outcome["error"] = str(err)

    thread = threading.Thread(target=run_all, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the run hangs on a dead worker"
    assert re.fullmatch(r"test: worker process \d+ died \(killed by SIGKILL\) with clips in "
                        r"flight .*; the run stopped, its outputs incomplete",
                        outcome.get("error", "")), outcome
