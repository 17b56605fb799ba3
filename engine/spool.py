"""The spool's sweep: removing staged copies that no job refers to any more, whatever left them behind.

A job's staged copy goes when it ends (its type's ``cleanup``), but only after the ledger has recorded the end: a
worker killed between the two (a success commits ``staged_path = NULL`` first) leaves the copy with nothing pointing
at it. The worker sweeps at start and with every lease sweep; a folder younger than ``ORPHAN_AGE_S`` is left alone,
since a submission stages its copy before the job's row is committed.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

ORPHAN_AGE_S = 15 * 60.0  # far longer than any submission waits for the ledger between staging and committing


def sweep(spool: Path, referenced: Iterable[str], older_than_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Remove the spool's ``job-*`` folders that hold no copy a job refers to; the folders removed."""
    keep = {Path(path).parent.resolve() for path in referenced}
    cutoff = time.time() - older_than_s
    removed = []
    for folder in spool.glob("job-*"):
        try:
            if not folder.is_dir() or folder.resolve() in keep or folder.stat().st_mtime > cutoff:
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        log.info("removed %d staged cop(ies) no job refers to from %s", len(removed), spool)
    return removed
