"""The queue that carries work: one Huey task, ``run_job(job_id)``, on a wakeable SQLite storage."""
