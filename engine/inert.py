"""Text from outside (server replies, job parameters, file names) made inert before it reaches a terminal.

An SMTP or S3 reply, a subject or a file name can hold ESC sequences (colours, cursor moves, window titles,
OSC 8 links, on some terminals clipboard writes), the 8-bit CSI (U+009B) or bidi overrides that make a line read
differently from what it holds. ``list``, ``show`` and ``watch`` print them as visible escapes instead.
"""

from __future__ import annotations

import re

# C0 (newlines too: one record is one line), DEL, C1, the Unicode line/paragraph separators and the bidi
# embedding, override, isolate and mark characters.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The same without C0, which JSON escapes inside strings itself (and uses as whitespace between its tokens).
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str) -> str:
    """``text`` with every terminal control, line break and bidi control shown as a visible escape."""
    return _UNSAFE.sub(_escape, text)


def inert_json(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with the same characters as ``\\uXXXX`` escapes: the same JSON value,
    nothing a terminal acts on (outside C0, these can only occur inside JSON strings)."""
    return _UNSAFE_IN_JSON.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
