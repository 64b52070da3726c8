"""report_streaming.md and report_streaming.json of the streaming demo (``demo/streaming_pipeline.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_streaming_report"]

TITLES = {
    "chunkwise": "Chunkwise Aligner (ours)",
    "rnnt_streaming": "NeMo cache-aware RNN-T",
    "aligner": "offline Aligner (make demo)",
}
SPLITS = ("dev", "test", "test_long")


def _cell(value: Any, fmt: str = "{:.2f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _wer_row(system: str, result: dict[str, Any]) -> str:
    cells = [TITLES.get(system, system)]
    for split in SPLITS:
        scores = result["splits"].get(split) or {}
        cells += [_cell(scores.get("offline_wer")), _cell((scores.get("streaming") or {}).get("wer"))]
    return "| " + " | ".join(cells) + " |"


def _streaming_row(system: str, result: dict[str, Any]) -> str:
    test = result["splits"]["test"].get("streaming") or {}
    latency = test.get("latency_ms") or {}
    nonspeech = result["splits"].get("nonspeech") or {}
    same = test.get("same_text_as_offline")
    cells = [
        TITLES.get(system, system),
        _cell(latency.get("median"), "{:.0f}"),
        _cell(latency.get("p90"), "{:.0f}"),
        _cell(latency.get("words"), "{:d}"),
        _cell(test.get("rtf"), "{:.3f}"),
        _cell(test.get("ms_per_chunk"), "{:.1f}"),
        "n/a" if same is None else f"{same}/{test['utterances']}",
        _cell(100 * nonspeech["no_text_share"] if nonspeech else None, "{:.0f}%"),
        _cell((result.get("training") or {}).get("global_step"), "{:.0f}"),
    ]
    return "| " + " | ".join(cells) + " |"


def write_streaming_report(out_dir: Path, report: dict[str, Any]) -> Path:
    """Two tables (WER %; latency, cost, non-speech) and the raw numbers; returns the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report_streaming.json").write_text(json.dumps(report, indent=2))
    systems = report["systems"]
    streaming = {name: result for name, result in systems.items() if "streaming" in result["splits"]["test"]}
    lines = [
        "# Streaming demo",
        "",
        "WER in %, greedy. Streamed: fed 40 ms at a time, then 1 s of silence, on one thread.",
        "",
        "| system | dev offline | dev streamed | test offline | test streamed | test_long offline "
        "| test_long streamed |",
        "|---|---|---|---|---|---|---|",
        *(_wer_row(name, result) for name, result in systems.items()),
        "",
        "Latency: from the end of a word in the audio (espeak-ng word timings) to the simulated moment the text held",
        "it, over the test words read correctly. RTF: compute / audio, one thread. Same text: streamed test",
        "transcripts equal to offline decoding of the same audio. Non-speech: clips (silence, noise, hum) read as no",
        "text.",
        "",
        "| system | median latency ms | p90 latency ms | words | RTF | ms / chunk | same text | non-speech no text "
        "| training steps |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_streaming_row(name, result) for name, result in streaming.items()),
        "",
        f"Total time: {report['total_minutes']:.1f} min.",
        "",
        *(f"- {name}: {result['model']}" for name, result in systems.items()),
    ]
    path = out_dir / "report_streaming.md"
    path.write_text("\n".join(lines) + "\n")
    return path
