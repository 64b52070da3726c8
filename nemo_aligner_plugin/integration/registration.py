"""NeMo-facing registration: the one place that touches NeMo's global state.

NeMo 3.0 refuses to instantiate any ``target``/``_target_`` outside
``nemo.core.classes.common.ALLOWED_TARGET_PREFIXES`` (``UnsafeTargetError``), which would make
``restore_from`` fail for our own ``.nemo`` files. We append exactly our package prefix, once.

``import nemo_aligner_plugin`` must register without importing NeMo itself (7 s and 0.5 GB, and absent from a
torch-free deployment that only runs ``nemo_aligner_plugin.onnx``): ``register_when_nemo_loads`` registers at
once when NeMo is already loaded, else right after NeMo's ``common`` module first runs.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

__all__ = ["PLUGIN_PREFIX", "register_with_nemo", "register_when_nemo_loads"]

PLUGIN_PREFIX = "nemo_aligner_plugin."
_COMMON = "nemo.core.classes.common"


def register_with_nemo() -> None:
    """Allow NeMo to instantiate classes from this package (idempotent)."""
    from nemo.core.classes import common

    if PLUGIN_PREFIX not in common.ALLOWED_TARGET_PREFIXES:
        common.ALLOWED_TARGET_PREFIXES.append(PLUGIN_PREFIX)


def register_when_nemo_loads() -> None:
    """Register now if NeMo's ``common`` module is loaded, else as soon as it is (a one-shot import hook)."""
    if _COMMON in sys.modules:
        register_with_nemo()
    elif not any(isinstance(finder, _AfterNemoCommon) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterNemoCommon())


class _AfterNemoCommon(importlib.abc.MetaPathFinder):
    """Finds ``nemo.core.classes.common`` through the other finders and registers once its code has run."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _COMMON:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from finding this finder again
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            register_with_nemo()

        spec.loader.exec_module = exec_module
        return spec
