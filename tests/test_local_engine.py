"""The local engine's start (glg/engine.py): with `start_here`, this process works through the
first jobs while the pool's workers start from a server, and every result still comes back
once, in job order."""

import multiprocessing
import os
import time

import pytest

from _jobs import job_and_pid
from glg.engine import clip_results
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
