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


def _cell(value: Any, fmt: str = "{:.2f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _row(system: str, result: dict[str, Any]) -> str:
    splits, training = result["splits"], result.get("training") or {}
    dev_stream = splits["dev"].get("streaming") or {}
    test_stream = splits["test"].get("streaming") or {}
    latency = test_stream.get("latency_ms") or {}
    same = test_stream.get("same_text_as_offline")
    cells = [
        TITLES.get(system, system),
        _cell(splits["dev"]["offline_wer"]),
        _cell(dev_stream.get("wer")),
        _cell(splits["test"]["offline_wer"]),
        _cell(test_stream.get("wer")),
        _cell(latency.get("median"), "{:.0f}"),
        _cell(latency.get("p90"), "{:.0f}"),
        _cell(test_stream.get("rtf"), "{:.3f}"),
        _cell(test_stream.get("ms_per_chunk"), "{:.1f}"),
        "n/a" if same is None else f"{same}/{test_stream['utterances']}",
        _cell(training.get("global_step"), "{:.0f}"),
    ]
    return "| " + " | ".join(cells) + " |"


def write_streaming_report(out_dir: Path, report: dict[str, Any]) -> Path:
    """The table (WER %, latency ms, RTF on one thread) and the raw numbers; returns the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report_streaming.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Streaming demo",
        "",
        "WER in %, greedy; streaming = fed 40 ms at a time, then 1 s of silence, on one thread. Latency: end of a word",
        "in the audio (espeak-ng word timings) to the simulated moment the recognizer's text held it, over the test",
        "words it got right. RTF: compute / audio. Same text: streamed test transcripts equal to offline ones.",
        "",
        "| system | dev offline | dev streaming | test offline | test streaming | median latency ms | p90 latency ms "
        "| RTF | ms / chunk | same text | training steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(_row(system, result) for system, result in report["systems"].items()),
        "",
        f"Total time: {report['total_minutes']:.1f} min.",
        "",
        *(f"- {system}: {result['model']}" for system, result in report["systems"].items()),
    ]
    path = out_dir / "report_streaming.md"
    path.write_text("\n".join(lines) + "\n")
    return path
