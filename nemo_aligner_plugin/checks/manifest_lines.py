"""Reading a JSON-lines manifest one line at a time, so that no line, however broken, escapes as an exception.

Fuzzed and damaged manifests (issue 26) raised where ``json.loads`` raises more than ``JSONDecodeError`` (a
number of more than 4,300 digits: ``ValueError``; arrays nested thousands deep: ``RecursionError``), where
``math.isfinite`` meets a 400-digit integer (``OverflowError``), and read without end where a manifest has no
newline (``/dev/zero``, a binary file given by mistake). Here each of those is a message for its line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import IO, Any, Optional

__all__ = ["MAX_LINE_BYTES", "is_number", "is_unicode", "parse_line", "printable", "read_lines", "shown"]

MAX_LINE_BYTES = 1 << 20  # a longer manifest line is reported, not parsed (and never held in memory whole)
MAX_SHOWN_CHARS = 80  # a field value quoted in a message is cut to this many characters


def read_lines(handle: IO[bytes]) -> Iterator[Optional[bytes]]:
    """The lines of a binary file; None for a line longer than ``MAX_LINE_BYTES``, which is read past in
    pieces of that size."""
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield raw
            continue
        while raw and not raw.endswith(b"\n"):
            raw = handle.readline(MAX_LINE_BYTES)
        yield None


def parse_line(raw: bytes) -> tuple[Any, Optional[str]]:
    """(JSON value, None) for one manifest line, or (None, why it cannot be read)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"not UTF-8: byte 0x{raw[err.start]:02x} at column {err.start + 1}; re-encode the file"
    try:
        return json.loads(line.rstrip("\r\n")), None
    except json.JSONDecodeError as err:
        return None, f"not valid JSON: {err.msg} (column {err.colno})"
    except RecursionError:
        return None, "not valid JSON for Python's reader: arrays or objects nested too deeply"
    except ValueError as err:  # e.g. an integer of more than 4,300 digits
        return None, f"not valid JSON for Python's reader: {err}"


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool); an integer too large for a float is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def is_unicode(text: str) -> bool:
    """False for a string with a lone surrogate (JSON ``"\\ud800"``): valid JSON, but no character, so encoding
    it (a tokenizer, a file write) fails."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(value: Any) -> str:
    """``repr(value)`` for a message, cut to ``MAX_SHOWN_CHARS`` characters (a 5,000-character string stays
    readable in a problem listing)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for str(): not produced by json.loads, but never fail on a message
        return f"<{type(value).__name__}>"
    return text if len(text) <= MAX_SHOWN_CHARS else f"{text[: MAX_SHOWN_CHARS - 15]}... ({len(text)} chars)"


def printable(message: str) -> str:
    """``message`` with control characters and lone surrogates escaped (``\\x1b``, ``\\ud800``): a path or text
    quoted from a damaged manifest can neither drive the terminal nor fail ``print``."""
    if message.isprintable():
        return message
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
