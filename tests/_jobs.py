"""Test helper: a job for `glg.engine.clip_results` that says which process ran it (importable
by pool workers, which cannot import a test module's functions)."""

import os
import time


def job_and_pid(job: int) -> tuple[int, int]:
    time.sleep(0.02)  # long enough that this process is still in a job when the pool is up
    return job, os.getpid()
