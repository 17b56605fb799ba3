"""Registers the ``noop`` job type in a test worker (``JOBDECK_JOB_MODULES=jobtypes_noop``, tests/ on PYTHONPATH).

The type itself lives in ``bench/noop_jobs.py`` so that benches and tests exercise the very same code.
"""

from __future__ import annotations

from bench.noop_jobs import NoopJob, NoopParams

__all__ = ["NoopJob", "NoopParams"]
