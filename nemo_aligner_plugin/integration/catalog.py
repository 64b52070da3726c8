"""Catalog of the plugin's pretrained models, as NeMo ``PretrainedModelInfo`` entries.

NeMo's ``from_pretrained(name)`` resolves non-HF names through ``list_available_models()`` and
caches the file under ``NEMO_CACHE_DIR``; a cached file is reused without touching the network,
and ``file://`` locations work offline, so a team can publish models on a shared filesystem.

Entries come from (in order, later names override earlier ones):
1. ``catalog.yaml`` shipped in this package (models the project itself publishes),
2. every YAML file listed in ``$NEMO_ALIGNER_CATALOG`` (``os.pathsep``-separated),
3. ``register_pretrained_model()`` calls at run time.
Each entry: ``{name, location, description, aliases?}``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import yaml
from nemo.core.classes.common import PretrainedModelInfo

__all__ = ["CATALOG_ENV", "list_pretrained_models", "register_pretrained_model"]

CATALOG_ENV = "NEMO_ALIGNER_CATALOG"
_PACKAGED_CATALOG = Path(__file__).with_name("catalog.yaml")
_RUNTIME_ENTRIES: dict[str, dict] = {}


def register_pretrained_model(
    name: str, location: str, description: str = "", aliases: Optional[list[str]] = None
) -> None:
    """Make ``AlignerEncoderModel.from_pretrained(name)`` find ``location`` (URL or ``file://`` path)."""
    _RUNTIME_ENTRIES[name] = {"name": name, "location": location, "description": description, "aliases": aliases}


def _read_catalog(path: Path) -> list[dict]:
    try:
        entries = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"Cannot read pretrained-model catalog {path}: {err}") from err
    if not isinstance(entries, list):
        raise ValueError(
            f"Pretrained-model catalog {path} must be a YAML list of entries, got {type(entries).__name__}"
        )
    for i, entry in enumerate(entries):
        missing = {"name", "location"} - set(entry or {})
        if missing:
            raise ValueError(f"Pretrained-model catalog {path}, entry {i}: missing field(s) {sorted(missing)}")
    return entries


def list_pretrained_models(model_class: type) -> list[PretrainedModelInfo]:
    """All catalog entries, bound to ``model_class``."""
    entries: dict[str, dict] = {}
    paths = [_PACKAGED_CATALOG] + [Path(p) for p in os.environ.get(CATALOG_ENV, "").split(os.pathsep) if p]
    for path in paths:
        for entry in _read_catalog(path):
            entries[entry["name"]] = entry
    entries.update(_RUNTIME_ENTRIES)
    return [
        PretrainedModelInfo(
            pretrained_model_name=e["name"],
            description=e.get("description") or "",
            location=e["location"],
            class_=model_class,
            aliases=e.get("aliases"),
        )
        for e in entries.values()
    ]
