"""Keeping NeMo's own log lines out of a user's console where they are noise (config dumps, per-call warnings)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_nemo"]


@contextmanager
def quiet_nemo(quiet: bool = True) -> Iterator[None]:
    """NeMo's log records below ERROR dropped while ``quiet``.

    A filter on NeMo's logger, not its level: NeMo's ``transcribe`` sets the level itself during the call. Each
    use adds its own filter object, so nested uses do not lift each other's.
    """

    def _errors_only(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    nemo_logger = logging.getLogger("nemo_logger")
    if quiet:
        nemo_logger.addFilter(_errors_only)
    try:
        yield
    finally:
        nemo_logger.removeFilter(_errors_only)
