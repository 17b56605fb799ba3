"""The file modes that keep Jobdeck's files its user's alone; a module of its own so the entry point sets the umask
before anything heavier is imported."""

from __future__ import annotations

PRIVATE_DIR = 0o700  # the data folder and every folder in it: other local users cannot even list them
PRIVATE_FILE = 0o600  # the ledger, its -wal/-shm, logs, spool copies, config.json, runtime files
PRIVATE_UMASK = 0o077  # what main.py sets, so that every file any part of Jobdeck makes is born private
