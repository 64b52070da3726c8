"""NeMo-facing registration: the one place that touches NeMo's global state.

NeMo 3.0 refuses to instantiate any ``target``/``_target_`` outside
``nemo.core.classes.common.ALLOWED_TARGET_PREFIXES`` (``UnsafeTargetError``), which would make
``restore_from`` fail for our own ``.nemo`` files. We append exactly our package prefix, once.
"""

from __future__ import annotations

__all__ = ["PLUGIN_PREFIX", "register_with_nemo"]

PLUGIN_PREFIX = "nemo_aligner_plugin."


def register_with_nemo() -> None:
    """Allow NeMo to instantiate classes from this package (idempotent)."""
    from nemo.core.classes import common

    if PLUGIN_PREFIX not in common.ALLOWED_TARGET_PREFIXES:
        common.ALLOWED_TARGET_PREFIXES.append(PLUGIN_PREFIX)
