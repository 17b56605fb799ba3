"""The courier process: effects run there, are noted before they are answered, and outlive the worker that asked."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import courier_effects
import pytest

from engine.errors import JobError, PermanentJobError
from engine.worker.courier import Courier, lock_path, wait_for_couriers
from engine.worker.delivery_notes import DeliveryNotes

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def courier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Courier]:
    monkeypatch.setenv("PYTHONPATH", f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    notes = DeliveryNotes(tmp_path / "jobdeck.db.delivered", lambda: [])
    courier = Courier(notes.path, notes.read)
    yield courier
    courier.close()


def test_an_effect_runs_in_the_courier_and_is_noted_before_its_answer(courier: Courier) -> None:
    result = courier.call(7, 2, courier_effects.where, ("a",))
    assert result is not None and result["tag"] == "a"
    assert result["pid"] != os.getpid()
    notes = DeliveryNotes(courier.notes, lambda: []).read()
    assert notes == {(7, 2): result}
    assert lock_path(courier.notes).exists()


def test_an_error_comes_back_as_itself_and_notes_nothing(courier: Courier) -> None:
    with pytest.raises(PermanentJobError, match="recipient rejected"):
        courier.call(1, 1, courier_effects.refuse, ("recipient rejected",))
    assert DeliveryNotes(courier.notes, lambda: []).read() == {}
    assert courier.call(1, 2, courier_effects.where, ("after",)) is not None  # the same courier goes on


def test_a_courier_that_dies_unanswered_fails_the_request_retryably_and_is_started_again(courier: Courier) -> None:
    first = courier.call(1, 1, courier_effects.where, ("first",))
    with pytest.raises(JobError, match="courier process stopped") as caught:
        courier.call(2, 1, courier_effects.die, ())
    assert not isinstance(caught.value, PermanentJobError)
    second = courier.call(3, 1, courier_effects.where, ("second",))
    assert first is not None and second is not None and first["pid"] != second["pid"]


def test_a_courier_that_dies_after_its_note_counts_as_delivered(courier: Courier) -> None:
    assert courier.call(4, 3, courier_effects.note_and_die, (str(courier.notes), 4, 3)) == {"noted": True}


def test_a_courier_whose_worker_is_gone_finishes_and_a_new_worker_waits_for_it(courier: Courier) -> None:
    """The worker takes the courier's lock and hands it down, so a worker killed while its courier is still
    starting does not let the next one read the notes before that courier has sent what it was asked."""
    answers: list[object] = []
    asking = threading.Thread(target=lambda: answers.append(courier.call(5, 1, courier_effects.slow, (0.6,))))
    asking.start()
    deadline = time.monotonic() + 10
    while not courier._pending and time.monotonic() < deadline:
        time.sleep(0.01)
    proc = courier._proc  # at once: the courier may not have started yet, and its lock must be held all the same
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()  # what the worker's death does to the courier's stdin
    began = time.monotonic()
    assert wait_for_couriers(courier.notes, 10)
    waited = time.monotonic() - began
    assert DeliveryNotes(courier.notes, lambda: []).read() == {(5, 1): {"slept": 0.6}}
    assert proc.wait(5) == 0
    assert waited > 0.2  # it did wait for the slow effect
    asking.join(5)


def test_waiting_for_couriers_gives_up_after_its_timeout(tmp_path: Path) -> None:
    from engine.worker.lock import try_lock

    notes = tmp_path / "notes"
    with lock_path(notes).open("a+") as held:
        try_lock(held)  # a courier that never finishes (its flock is per open file: ours is another)
        began = time.monotonic()
        assert not wait_for_couriers(notes, 0.3)
        assert 0.3 <= time.monotonic() - began < 3


def test_the_password_reaches_the_courier_through_the_pipe_alone(courier: Courier) -> None:
    """Another local user can read a process's command line (and root its environment): neither carries it."""
    secret = "pipe-only-s3cret"
    answer = courier.call(6, 1, courier_effects.where, (secret,))
    assert answer is not None and answer["tag"] == secret  # it did arrive
    proc = Path(f"/proc/{answer['pid']}")
    for exposed in ("cmdline", "environ"):
        assert secret.encode() not in (proc / exposed).read_bytes()
    assert secret not in courier.notes.with_name(courier.notes.name + ".courier-lock").read_text()
