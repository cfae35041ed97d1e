"""Test helper: a job for `glg.engine.clip_results` that says which process ran it (importable
by pool workers, which cannot import a test module's functions)."""

import os
import signal
import time


def job_and_pid(job: int) -> tuple[int, int]:
    time.sleep(0.02)  # long enough that this process is still in a job when the pool is up
    return job, os.getpid()


def job_or_die(job: tuple[int, int]) -> tuple[int, int]:
    """`job_and_pid` of `(number, pid)`, except that a process other than `pid` (a pool's
    worker) dies at once, as a crash in native code would leave it."""
    number, parent = job
    if os.getpid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return job_and_pid(number)
