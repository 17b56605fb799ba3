"""The retry policy as pure functions: whether a job that lost an attempt tries again, and after how long."""

from __future__ import annotations

import random


def compute_backoff(retry_number: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``retry_number`` (0 for the first retry).

    delay = random(0, min(cap, base × 2^retry_number)): "full jitter", so a burst of failures spreads out
    instead of retrying in lockstep, and it stays jittered at the cap.
    """
    if retry_number < 0:
        raise ValueError("retry_number must be >= 0")
    ceiling = min(cap_s, base_s * (2 ** min(retry_number, 62)))
    return (rng or random).uniform(0.0, ceiling)


def retry_delay(
    attempts: int, max_retries: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float | None:
    """The one retry decision, for an attempt that raised and for one whose worker was lost alike: seconds until
    the next attempt, or ``None`` once ``attempts`` (those made, the lost one included) used up ``max_retries``."""
    if attempts > max_retries:
        return None
    return compute_backoff(max(attempts - 1, 0), base_s, cap_s, rng)
