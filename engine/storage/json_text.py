"""The ledger's JSON columns as text: encoded by orjson, read back by the standard library.

Every transition writes a JSON snapshot of its job (the event's payload), and a create writes its parameters
too, and orjson encodes several times faster than the standard library. Reading stays with
the standard library, which keeps integers beyond 64 bits exact (orjson reads them as floats).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS  # {1: "a"} → {"1": "a"}, as the standard library writes it


def dumps(value: Any) -> str:
    """Compact JSON text. What orjson cannot encode (an integer beyond 64 bits) the standard library does.
    NaN and infinities become null, which JSON can carry (the standard library wrote ``NaN``, which it cannot)."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))
