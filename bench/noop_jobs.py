"""A ``noop`` job type that does nothing (or sleeps, or fails on request), for benches and tests of the plumbing.

Load it in a worker with ``JOBDECK_JOB_MODULES=noop_jobs`` (``bench/`` on PYTHONPATH) or ``bench.noop_jobs``
(the repository root on PYTHONPATH): the job's own work costs nothing, so what is measured is the engine.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from engine.errors import JobError, PermanentJobError
from engine.jobs.base import JobContext, JobType, Params
from engine.jobs.registry import register


class NoopParams(Params):
    sleep_s: float = Field(default=0.0, ge=0, description="Seconds to sleep before finishing")
    fail: bool = Field(default=False, description="Raise a retryable JobError")
    permanent: bool = Field(default=False, description="Raise a PermanentJobError (never retried)")
    progress_steps: int = Field(default=0, ge=0, le=1_000_000, description="Progress reports spread over sleep_s")


@register
class NoopJob(JobType):
    name = "noop"
    label = "No-op"
    description = "Does nothing; for benchmarks and tests of the job plumbing."
    Params = NoopParams
    retry_base_s = 0.05
    retry_cap_s = 0.2

    def run(self, ctx: JobContext, params: NoopParams) -> dict[str, Any]:  # type: ignore[override]
        if params.progress_steps:
            for step in range(1, params.progress_steps + 1):
                time.sleep(params.sleep_s / params.progress_steps)
                ctx.progress(step, params.progress_steps)
        elif params.sleep_s:
            time.sleep(params.sleep_s)
        if params.permanent:
            raise PermanentJobError("noop asked to fail permanently")
        if params.fail:
            raise JobError("noop asked to fail")
        return {"slept_s": params.sleep_s}
