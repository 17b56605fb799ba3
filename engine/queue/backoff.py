"""The retry policy as one pure function: exponential backoff with full jitter and a cap."""

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
