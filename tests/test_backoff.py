"""The retry policy's pure part: full jitter within min(cap, base × 2^n)."""

from __future__ import annotations

import random

import pytest

from engine.queue.backoff import compute_backoff


def test_delay_stays_within_the_growing_window() -> None:
    rng = random.Random(42)
    for n in range(12):
        ceiling = min(600.0, 2.0 * 2**n)
        delays = [compute_backoff(n, 2.0, 600.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # the whole window is used: full jitter
        assert min(delays) < ceiling * 0.2


def test_still_jittered_at_the_cap() -> None:
    rng = random.Random(7)
    delays = {round(compute_backoff(40, 2.0, 600.0, rng), 6) for _ in range(50)}
    assert len(delays) == 50 and max(delays) <= 600.0


def test_seeded_random_is_reproducible() -> None:
    first = [compute_backoff(n, 2.0, 600.0, random.Random(1)) for n in range(5)]
    again = [compute_backoff(n, 2.0, 600.0, random.Random(1)) for n in range(5)]
    assert first == again


def test_negative_retry_number_is_a_bug() -> None:
    with pytest.raises(ValueError):
        compute_backoff(-1, 2.0, 600.0)


def test_the_retry_decision_counts_attempts_the_same_for_any_lost_attempt() -> None:
    """One rule for an attempt that raised and one whose worker was lost: retries until attempts exceed max_retries,
    each after a backoff within the window of its retry number."""
    from engine.queue.backoff import retry_delay

    assert retry_delay(4, 3, 2.0, 600.0, random.Random(1)) is None  # the fourth attempt was the last of 1 + 3
    assert retry_delay(1, 0, 2.0, 600.0, random.Random(1)) is None  # no retries at all
    first = retry_delay(1, 3, 2.0, 600.0, random.Random(3))
    third = retry_delay(3, 3, 2.0, 600.0, random.Random(3))
    assert first is not None and 0.0 <= first <= 2.0
    assert third is not None and 0.0 <= third <= 8.0
    assert third == compute_backoff(2, 2.0, 600.0, random.Random(3))
