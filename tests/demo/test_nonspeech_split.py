"""nemo_aligner_plugin.demo.nonspeech_split: the corpus's nonspeech test split, its scores and its report section."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from nemo_aligner_plugin.config import NonSpeechConfig
from nemo_aligner_plugin.demo import nonspeech_split as ns
from nemo_aligner_plugin.demo.report import nonspeech_lines, write_report


@pytest.mark.unit
def test_plan_is_deterministic_with_the_seed_and_more_clips_keep_the_first():
    plan = ns.plan_nonspeech(3, 40)
    assert plan == ns.plan_nonspeech(3, 40)
    assert plan != ns.plan_nonspeech(4, 40)
    assert ns.plan_nonspeech(3, 7) == plan[:7]
    assert [c.index for c in plan] == list(range(40))
    assert len({c.seed for c in plan}) == 40
    assert ns.plan_nonspeech(3, 0) == []


@pytest.mark.unit
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plan_uses_no_kind_or_level_of_the_training_defaults_but_long_digital_silence(seed):
    train = NonSpeechConfig()
    low, high = train.level_dbfs
    plan = ns.plan_nonspeech(seed, 40)
    noise = [c for c in plan if c.kind != "silence"]
    silence = [c for c in plan if c.kind == "silence"]
    assert not {c.kind for c in noise} & set(train.kinds)
    assert {c.kind for c in noise} == set(ns.UNSEEN_KINDS)  # every unseen kind is there
    assert all(not low <= c.level_dbfs <= high for c in noise)
    assert all(-80.0 <= c.level_dbfs <= -15.0 for c in noise)
    assert any(c.level_dbfs < low for c in noise) and any(c.level_dbfs > high for c in noise)
    # digital silence, a kind training sees, only far longer than its rows and the demo's utterances
    assert len(silence) == 7 and all(c.level_dbfs is None and 10.0 <= c.seconds <= 20.0 for c in silence)
    assert all(1.0 <= c.seconds <= 20.0 for c in plan)
    assert sum(c.seconds >= 15.0 for c in plan) >= 4
    assert 5.0 <= sum(c.seconds for c in plan) / 60 <= 8.0  # the demo's evaluation stays short
    assert ns.plan_nonspeech(seed, 4)[0].kind == "silence"  # the smoke corpus has one


@pytest.mark.unit
def test_written_split_is_the_planned_audio_at_its_level(tmp_path):
    clips = ns.write_nonspeech_split(tmp_path / "a", 5, 6, 16000)
    manifest = [json.loads(line) for line in (tmp_path / "a" / "nonspeech_manifest.json").read_text().splitlines()]
    meta = [json.loads(line) for line in (tmp_path / "a" / "meta" / "nonspeech.jsonl").read_text().splitlines()]
    assert [m["kind"] for m in manifest] == [c.kind for c in ns.plan_nonspeech(5, 6)] == [m["kind"] for m in meta]
    for entry, clip, info in zip(manifest, clips, meta, strict=True):
        assert set(entry) == {"audio_filepath", "duration", "text", "kind", "level_dbfs"} and entry["text"] == ""
        assert entry["audio_filepath"] == info["audio_filepath"] == clip.audio_filepath
        assert (info["level_dbfs"], info["seconds"], info["seed"]) == (clip.level_dbfs, clip.seconds, clip.seed)
        x, sr = sf.read(entry["audio_filepath"], dtype="int16")
        assert sr == 16000 and x.ndim == 1 and entry["duration"] == len(x) / 16000
        assert entry["duration"] == pytest.approx(clip.seconds, abs=1e-4)
        if clip.kind == "silence":
            assert not x.any()
        else:
            rms = math.sqrt(np.mean((x / 32767.0) ** 2))
            assert 20 * math.log10(rms) == pytest.approx(clip.level_dbfs, abs=1.0)
    again = ns.write_nonspeech_split(tmp_path / "b", 5, 6, 16000)
    for a, b in zip(clips, again, strict=True):
        assert open(a.audio_filepath, "rb").read() == open(b.audio_filepath, "rb").read()


@pytest.mark.unit
def test_scores_count_invented_words_per_minute_and_clips_without_text():
    scores = ns.nonspeech_scores(["", "  ", "call my shopping list", "hi"], [30.0, 30.0, 45.0, 15.0])
    assert scores == {
        "clips": 4,
        "minutes": 2.0,
        "words": 5,
        "invented_words_per_minute": 2.5,
        "no_text_share": 0.5,
    }
    assert ns.nonspeech_scores([""], [6.0])["invented_words_per_minute"] == 0.0
    assert ns.nonspeech_scores(["a"], [7.0]) == {
        "clips": 1,
        "minutes": 0.117,
        "words": 1,
        "invented_words_per_minute": 8.571,
        "no_text_share": 0.0,
    }
    for hyps, durs in (([], []), (["a"], []), ([""], [0.0])):
        with pytest.raises(ValueError):
            ns.nonspeech_scores(hyps, durs)


def _line(kind: str, seconds: float, pred: str, level=-20.0) -> dict:
    return {"audio_filepath": f"/c/{kind}{seconds}.wav", "duration": seconds, "kind": kind, "level_dbfs": level,
            "pred_text": pred}  # fmt: skip


@pytest.mark.unit
def test_summary_per_kind_and_worst_clips():
    lines = [
        _line("silence", 12.0, "", None),
        _line("hum", 6.0, "call my shopping list"),
        _line("hum", 6.0, "hi"),
        _line("bursts", 6.0, "book a flight to lisbon on friday"),
        _line("bursts", 30.0, ""),
    ]
    s = ns.summarize_nonspeech(lines, worst=3)
    assert (s["clips"], s["minutes"], s["words"], s["no_text_share"]) == (5, 1.0, 12, 0.4)
    assert s["by_kind"]["hum"] == {
        "clips": 2,
        "minutes": 0.2,
        "words": 5,
        "invented_words_per_minute": 25.0,
        "no_text_share": 0.0,
    }
    assert s["by_kind"]["silence"]["no_text_share"] == 1.0 and list(s["by_kind"]) == ["bursts", "hum", "silence"]
    assert [(w["kind"], w["words"]) for w in s["worst"]] == [("bursts", 7), ("hum", 4), ("hum", 1)]
    assert ns.summarize_nonspeech(lines[:1])["worst"] == []  # nothing invented: no clip to show


def _report(systems: bool) -> dict:
    nonspeech = ns.summarize_nonspeech([_line("silence", 12.0, "", None), _line("hum", 48.0, "how far is phoenix")])
    splits = {
        "test": {"wer": 0.1, "cer": 0.05, "utterances": 8, "wer_by_words": {"1-4": 0.1}},
        "nonspeech": {"greedy": nonspeech, "beam": ns.summarize_nonspeech([_line("hum", 60.0, "")])},
    }
    baseline = {"test": splits["test"], "nonspeech": {"greedy": ns.summarize_nonspeech([_line("hum", 60.0, "a b")])}}
    return {
        "model": "m.nemo",
        "training": {},
        "splits": splits,
        "total_minutes": 1.0,
        "systems": {"aligner": {"splits": splits}, "ctc": {"splits": baseline}} if systems else None,
    }


@pytest.mark.unit
def test_report_renders_the_nonspeech_table_alone_and_side_by_side(tmp_path):
    write_report(tmp_path, _report(systems=False))
    text = (tmp_path / "report.md").read_text()
    section = text[text.index("## Non-speech") :]
    assert "| aligner | greedy | 2 | 1.0 | 50.0% | 4.00 |" in section
    assert "| aligner | beam | 1 | 1.0 | 100.0% | 0.00 |" in section
    assert '- aligner, greedy: hum, -20.0 dBFS, 48.0 s: "how far is phoenix"' in section
    assert "| nonspeech |" not in text  # no WER row for it in the splits table
    saved = json.loads((tmp_path / "report.json").read_text())["splits"]["nonspeech"]
    assert saved["greedy"]["invented_words_per_minute"] == 4.0 and saved["greedy"]["by_kind"]["hum"]["words"] == 4

    report = _report(systems=True)  # with baselines: one row per system and decoding
    lines = nonspeech_lines({name: r["splits"].get("nonspeech") for name, r in report["systems"].items()})
    assert [line for line in lines if line.startswith("| ctc")] == ["| ctc | greedy | 1 | 1.0 | 0.0% | 2.00 |"]
    assert sum(line.startswith("| aligner") for line in lines) == 2
    assert nonspeech_lines({"aligner": None}) == []
