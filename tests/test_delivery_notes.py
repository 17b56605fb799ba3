"""Delivery notes: a crash mid-line loses only that line, and compaction keeps exactly the attempts still running."""

from __future__ import annotations

import stat
from pathlib import Path

from engine.worker.delivery_notes import COMPACT_BYTES, DeliveryNotes


def test_a_torn_last_line_is_skipped_and_the_others_are_read(tmp_path: Path) -> None:
    notes = DeliveryNotes(tmp_path / "notes", lambda: [])
    notes.open()
    notes.note(1, 1, {"message_id": "<a@x>"})
    notes.note(2, 3, None)
    notes.close()
    with (tmp_path / "notes").open("a") as fh:
        fh.write('{"job":3,"attempt":1,"res')  # a kill mid-write
    assert notes.read() == {(1, 1): {"message_id": "<a@x>"}, (2, 3): None}
    assert stat.S_IMODE((tmp_path / "notes").stat().st_mode) == 0o600


def test_compaction_keeps_the_notes_of_attempts_still_running(tmp_path: Path) -> None:
    running = [(2, 1)]
    notes = DeliveryNotes(tmp_path / "notes", lambda: running)
    notes.open()
    for job in (1, 2, 3):
        notes.note(job, 1, {"job": job})
        notes.settled()
    notes.compact()
    assert notes.read() == {(2, 1): {"job": 2}}
    notes.note(4, 2, None)  # the file is written on after compaction
    notes.settled()
    assert set(notes.read()) == {(2, 1), (4, 2)}


def test_a_large_file_is_compacted_once_no_note_waits_for_its_commit(tmp_path: Path) -> None:
    notes = DeliveryNotes(tmp_path / "notes", lambda: [])
    notes.open()
    notes.note(0, 1, {"padding": "x" * COMPACT_BYTES})
    notes.note(1, 1, None)  # its commit has not returned yet: nothing may be dropped
    notes.settled()
    assert set(notes.read()) == {(0, 1), (1, 1)}
    notes.settled()
    assert notes.read() == {}
    notes.close()
