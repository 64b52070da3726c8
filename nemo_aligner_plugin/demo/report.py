"""The demo's report: ``report.md`` (tables for a reader) and ``report.json`` (every number, for scripts).

Reads the dict the demo assembles: model, training summary, per-split scores (demo/evaluate.py; the ``nonspeech``
split's are invented words, not WER), alignment plot scores, length ratios and, with baselines, one entry per system.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from nemo_aligner_plugin.demo.evaluate import NONSPEECH_SPLIT, PAD_SECONDS

__all__ = ["write_report", "nonspeech_lines"]


def ratio_text(r: Optional[float]) -> str:
    """A ratio as ``1.25x``, or ``-`` where there is none."""
    return "-" if r is None else f"{r:.2f}x"


def write_report(out_dir: Path, report: dict) -> Path:
    """Write report.md and report.json into ``out_dir``; returns the report.md path."""
    t = report["training"]
    lines = [
        "# Aligner-Encoder demo report",
        "",
        f"- model: `{report['model']}`",
        f"- training: {t['global_step']} steps, {t['minutes']:.1f} min ({t['stop_reason']})"
        if "global_step" in t
        else "- training: none in this run (a given model without a training_summary.json next to it)",
        *(
            [f"- CTC warm-up before it: {w['global_step']} steps, {w['minutes']:.1f} min (`{w['nemo_path']}`)"]
            if (w := report["training"].get("ctc_warmup"))
            else []
        ),
        f"- whole demo: {report['total_minutes']:.1f} min",
    ]
    if report.get("alignment"):
        a = report["alignment"]
        score = a.get("aligning_score", float("nan"))
        head = f", head {a['aligning_head']}" if a.get("aligning_head") is not None else ""
        lines.append(f"- aligning layer: {a.get('aligning_layer')}{head} (diagonality {score:.3f}), plot: `{a['png']}`")
    lines += [
        "",
        "| split | utterances | WER greedy | CER greedy | WER beam | CER beam | WER long-form | WER long-form beam "
        "| greedy WER by reference words |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split, r in report["splits"].items():
        if split == NONSPEECH_SPLIT:
            continue  # no WER: its own section below
        buckets = ", ".join(f"{k}: {v:.3f}" for k, v in r["wer_by_words"].items())
        beam = f"{r['wer_beam']:.4f} | {r['cer_beam']:.4f}" if "wer_beam" in r else "- | -"
        chunked = " | ".join(f"{r[k]:.4f}" if k in r else "-" for k in ("wer_longform", "wer_longform_beam"))
        lines.append(
            f"| {split} | {r['utterances']} | {r['wer']:.4f} | {r['cer']:.4f} | {beam} | {chunked} | {buckets} |"
        )
    lines.append("\nbeam: the config's `decoding.beam` (paper: width 6, label-smoothing debiasing).")
    lines.append(
        "long-form: audio longer than the config's `longform.chunk_seconds` transcribed in chunks (its "
        "`longform` section, enabled; docs/longform.md), greedy or with the beam search above."
        + (f" Options given for this report: {report['longform_options']}." if report.get("longform_options") else "")
    )
    lines.append(
        "test_long: 2-3 unseen sentences read as sentences (a pause at each end); test_long_nopause: the same read "
        "straight on; test_long_sentences: each of those sentences read alone; dev_long: built like test_long with the"
        " train voices, for tuning long-audio settings."
        f" test_padded: the test utterances with {PAD_SECONDS} s of silence before and after (the corpus "
        "is trimmed)."
    )
    if report.get("length_ratios"):
        lines += [
            "",
            "## test_long / test, in two factors",
            "",
            "| decoding | test_long as | test_long / test | = sentences alone / test | x test_long / sentences alone |",
            "|---|---|---|---|---|",
        ]
        for decoding, r in report["length_ratios"].items():
            for how in ("whole", "longform"):
                if how in r:
                    lines.append(
                        f"| {decoding} | {'long-form' if how == 'longform' else 'one piece'} | "
                        f"{ratio_text(r[how]['vs_test'])} | {ratio_text(r['sentences_alone_vs_test'])} | "
                        f"{ratio_text(r[how]['vs_sentences_alone'])} |"
                    )
        lines.append(
            "\nsentences alone: test_long_sentences, each test_long sentence read alone with its voice and noise. The"
            " first factor is the sentences (longer than test's on average), the second what long audio costs."
        )
    systems = report.get("systems") or {"aligner": {"splits": report["splits"]}}
    lines += nonspeech_lines({name: r["splits"].get(NONSPEECH_SPLIT) for name, r in systems.items()})
    if report.get("systems"):
        lines += [
            "",
            "## Side by side (same corpus, encoder, optimizer and budget)",
            "",
            "| system (greedy) | dev WER | test WER | test_long WER | test_long_nopause WER | test_padded WER | steps "
            "| train min | encoder ms | decode ms |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in report["systems"].items():
            t, d, sp = r.get("training") or {}, r["decode"], r["splits"]
            minutes = f"{t['minutes']:.1f}" if t.get("minutes") is not None else "?"
            lines.append(
                f"| {name} | {sp['dev']['wer']:.4f} | {sp['test']['wer']:.4f} | {sp['test_long']['wer']:.4f} | "
                f"{sp['test_long_nopause']['wer']:.4f} | {sp['test_padded']['wer']:.4f} | "
                f"{t.get('global_step', '?')} | {minutes} | {d['encoder_ms']} | {d['decode_ms']} |"
            )
        first = next(iter(report["systems"].values()))["decode"]
        lines.append(f"\nms: median for one batch of {first['batch']} test utterances, {first['threads']} thread(s).")
    text = "\n".join(lines) + "\n"
    (out_dir / "report.md").write_text(text)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return out_dir / "report.md"


def _clip_text(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def nonspeech_lines(by_system: dict[str, Optional[dict]]) -> list[str]:
    """The "Non-speech" section: per system and decoding, the share of clips given no text, the words invented per
    minute and the clips with the most words; ``by_system``: system -> its ``nonspeech`` scores (None: not scored)."""
    rows = [(name, decoding, r) for name, ns in by_system.items() if ns for decoding, r in ns.items()]
    if not rows:
        return []
    lines = [
        "",
        "## Non-speech (nobody speaks: every word is invented)",
        "",
        "| system | decoding | clips | minutes | clips with no text | invented words / min |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {decoding} | {r['clips']} | {r['minutes']:.1f} | {100 * r['no_text_share']:.1f}% | "
        f"{r['invented_words_per_minute']:.2f} |"
        for name, decoding, r in rows
    ]
    lines.append(
        "\nnonspeech: noise colours, mains hum, sweeps and bursts that training's non-speech rows do not use, quieter "
        "and louder than theirs, 1-18 s, and 10-20 s of digital silence (docs/demo.md). An aligner reads it with its "
        "own `longform` section, as `transcribe()` does."
    )
    worst = [(name, decoding, w) for name, decoding, r in rows for w in r.get("worst", [])]
    if worst:
        lines.append("\nMost words invented (system, decoding: kind, level, length: hypothesis):\n")
        for name, decoding, w in worst:
            level = "digital zeros" if w["level_dbfs"] is None else f"{w['level_dbfs']:.1f} dBFS"
            lines.append(
                f'- {name}, {decoding}: {w["kind"]}, {level}, {w["seconds"]:.1f} s: "{_clip_text(w["pred_text"])}"'
            )
    return lines
