"""One warning per interval for problems that recur every step (skipped utterances, dropped optimizer steps).

Warning on every occurrence would bury the training log; warning once would hide that it keeps happening.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from nemo.utils import logging

__all__ = ["RateLimitedWarning"]


class RateLimitedWarning:
    """Counts occurrences and logs at most one warning per ``interval_s``, built from the count since the last."""

    def __init__(self, interval_s: float = 60.0):
        self.interval_s = interval_s
        self.since_last = 0  # occurrences not yet reported
        self._last_time = float("-inf")

    def note(self, count: int, message: Callable[[int], str]) -> None:
        """Add ``count`` occurrences; warn with ``message(occurrences since the last warning)`` if it is time."""
        self.since_last += count
        now = time.monotonic()
        if now - self._last_time >= self.interval_s:
            logging.warning(message(self.since_last))
            self._last_time, self.since_last = now, 0
