"""NeMo manifests (one JSON object a line) read and written, and transcripts scored with jiwer.

Shared by the transcription CLI, the demo and the benchmarks, so that every script reads a manifest the same way:
errors name the file and line, relative audio paths resolve against the manifest's folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["read_manifest", "write_manifest", "read_predictions", "score"]


def read_manifest(path: Path | str, required: tuple[str, ...] = ("audio_filepath",)) -> list[dict]:
    """Manifest lines as dicts; errors (a ``required`` field missing, bad JSON, ...) name the file and line."""
    from nemo_aligner_plugin import checks

    path = Path(path)
    errors = [p for p in checks.validate_manifest(path, required) if p.severity == "error"]
    if errors:
        raise ValueError("\n".join(str(p) for p in errors[:10]))
    entries = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err
            if "audio_filepath" not in entry:
                raise ValueError(f"{path}:{lineno}: missing field 'audio_filepath'")
            audio = Path(entry["audio_filepath"])
            if not audio.is_absolute():
                entry["audio_filepath"] = str(path.parent / audio)
            entries.append(entry)
    if not entries:
        raise ValueError(f"{path}: manifest has no entries")
    return entries


def write_manifest(path: Path | str, entries: Sequence[dict]) -> Path:
    """One JSON line per entry (UTF-8, non-ASCII text kept as is); parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    return path


def read_predictions(path: Path | str) -> list[dict]:
    """A predictions file as written by the transcription CLI (no checks: our own output)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def score(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus WER and CER (jiwer) and the number of utterances scored."""
    import jiwer

    return {
        "wer": jiwer.wer(list(references), list(hypotheses)),
        "cer": jiwer.cer(list(references), list(hypotheses)),
        "num_utterances": len(references),
    }
