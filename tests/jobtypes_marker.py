"""A ``marker`` job type for lease tests (``JOBDECK_JOB_MODULES=jobtypes_marker``, tests/ on PYTHONPATH).

Its run appends a line to a file and then lingers, so a test can kill the worker after the work was done and
before the success was recorded; it knows afterwards that an attempt completed (``completed_result``) when the
file is there.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field

from engine.jobs.base import CleanupEnv, JobContext, JobType, Params
from engine.jobs.registry import register


class MarkerParams(Params):
    path: str = Field(description="The file each attempt appends a line to")
    linger_s: float = Field(default=0.0, ge=0, description="Seconds to wait after the work, before returning")
    knows_completion: bool = Field(default=True, description="Whether completed_result looks at the file")


@register
class MarkerJob(JobType):
    name = "marker"
    label = "Marker"
    Params = MarkerParams
    retry_base_s = 0.05
    retry_cap_s = 0.2

    def run(self, ctx: JobContext, params: MarkerParams) -> dict[str, Any]:  # type: ignore[override]
        with Path(params.path).open("a", encoding="utf-8") as fh:
            fh.write(f"attempt {ctx.attempt}\n")
        time.sleep(params.linger_s)
        return {"marked": params.path}

    def completed_result(
        self,
        job: dict[str, Any],
        staged_path: Path | None,
        env: CleanupEnv,
        *,
        checkpoint: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        params = job["parameters"]
        if params.get("knows_completion", True) and Path(params["path"]).exists():
            return {"marked": params["path"], "found_after_a_lost_worker": True}
        return None
