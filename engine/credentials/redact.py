"""Scrubbing secrets from text in every form they take on the wire: literal, base64 (alone, inside an AUTH PLAIN
blob or any longer base64 text), URL-encoded and backslash-escaped.

A server that echoes an AUTH line, a library that quotes a URL or a codec error that shows ``'\\xe9'`` would
otherwise put a password into an error, and from there into the ledger, its events and the logs. Every place that
stores or shows such text calls ``redact`` (through ``Credentials.redact`` or ``redact_seen``).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter secrets are not looked for: replacing every "ab" in a message would make it unreadable, and a
# password that short protects nothing anyway.
MIN_SECRET_CHARS = 4
# A base64 fragment shorter than this matches ordinary words too often to be worth masking.
_MIN_B64_CORE = 4
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")


def _b64_cores(raw: bytes) -> list[str]:
    """For each of the three byte alignments the secret can have inside a longer blob (``\\0user\\0password``,
    ``user\\0user\\0password``, …), the base64 characters that depend on the secret's bytes alone; whatever
    precedes or follows it, an encoding of a blob holding the secret contains one of them."""
    cores = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        start = -(-shift * 8 // 6)  # the first character whose six bits all lie inside the secret
        end = (shift + len(raw)) * 8 // 6  # one past the last such character
        core = encoded[start:end]
        if len(core) >= _MIN_B64_CORE:
            cores.append(core)
            cores.append(core.translate(str.maketrans("+/", "-_")))  # the URL-safe alphabet
    return cores


@lru_cache(maxsize=64)
def _forms(secret: str) -> tuple[tuple[str, ...], re.Pattern[str] | None]:
    """The literal forms (longest first, so a form is never half-replaced by a shorter one) and one pattern that
    finds the secret's base64 cores."""
    raw = secret.encode("utf-8")
    literal = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        secret.encode("unicode_escape").decode("ascii"),
        ascii(secret)[1:-1],
        repr(raw)[2:-1],  # its UTF-8 bytes as Python shows them: b'p\xc3\xa4ss'
        raw.decode("latin-1"),  # UTF-8 bytes shown as if they were Latin-1 (a common mojibake)
    }
    cores = sorted(set(_b64_cores(raw)), key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(core) for core in cores)) if cores else None
    return tuple(sorted(literal, key=len, reverse=True)), pattern


def _mask_base64_words(text: str, cores: re.Pattern[str]) -> str:
    """Mask each whole base64 word that contains a core: the characters around a core still carry a few bits of
    the secret's first and last bytes. Found by the cores, then widened by hand (linear, unlike a regex with
    a greedy prefix, on a long base64 text)."""
    spans: list[tuple[int, int]] = []
    for found in cores.finditer(text):
        start, end = found.span()
        if spans and start < spans[-1][1]:
            continue
        while start > 0 and text[start - 1] in _B64_CHARS:
            start -= 1
        while end < len(text) and text[end] in _B64_CHARS:
            end += 1
        while end < len(text) and text[end] == "=":
            end += 1
        spans.append((start, end))
    if not spans:
        return text
    parts, last = [], 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(MASK)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret (of at least ``MIN_SECRET_CHARS`` characters) replaced by ***."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) < MIN_SECRET_CHARS:
            continue
        literal, pattern = _forms(secret)
        for form in literal:
            text = text.replace(form, MASK)
        if pattern is not None:
            text = _mask_base64_words(text, pattern)
    return text


class SecretSet:
    """The secrets one process has handed out, so that anything it stores or logs can be scrubbed of them."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = tuple(self._secrets)
        return redact(text, secrets) if secrets else text


# Every secret any credential lookup of this process returned: log records are scrubbed with the same set as
# job errors, though logging is configured long before the worker's ``Credentials`` exists.
SEEN = SecretSet()


def redact_seen(text: str) -> str:
    return SEEN.redact(text)
