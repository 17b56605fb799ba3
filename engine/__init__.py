"""Jobdeck's engine: the job ledger, job types, queue, worker, events and credentials — no Qt here."""

__version__ = "0.1.0"
