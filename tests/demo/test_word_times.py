"""nemo_aligner_plugin.demo.word_times: reference word end times of demo-corpus wavs, read from libespeak-ng."""

from __future__ import annotations

import ctypes.util
import json
import shutil
import subprocess
import wave
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from nemo_aligner_plugin.demo import word_times as wt
from nemo_aligner_plugin.demo.speech import SAMPLE_RATE, Utterance, synthesize

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or ctypes.util.find_library("espeak-ng") is None,
    reason="espeak-ng (CLI and libespeak-ng) not installed",
)

# (spoken, voice, rate, pitch): espeak-ng joins "on the"/"in the" into one word; the second has a sentence pause,
# apostrophes and a full stop inside a token, as test_long's texts do
CASES = [
    ("switch on the fan in the guest room", "en-us+m3", 175, 50),
    ("It's five degrees in berlin. Text grandpa that i'll be late.", "en-gb-scotland+f2", 150, 60),
]


def _entries(tmp_path: Path) -> list[dict]:
    """Corpus meta entries of the CASES, synthesized into tmp_path exactly as the corpus builder does."""
    entries = []
    for i, (spoken, voice, rate, pitch) in enumerate(CASES):
        text = " ".join(wt.manifest_words(spoken))
        utt = Utterance("test", i, text, spoken, voice, rate, pitch, snr_db=30.0, noise_seed=i)
        utt.audio_filepath = str(tmp_path / f"test_{i:06d}.wav")
        utt.duration = synthesize(utt, Path(utt.audio_filepath))
        entries.append(asdict(utt))
    return entries


def _wav_frames(path: str) -> int:
    with wave.open(path, "rb") as w:
        assert w.getframerate() == SAMPLE_RATE
        return w.getnframes()


@pytest.mark.unit
def test_manifest_words_follow_whitespace_tokens_without_case_or_full_stops():
    assert wt.manifest_words("Schedule a meeting at ten. It's late, i'll go.") == [
        "schedule",
        "a",
        "meeting",
        "at",
        "ten",
        "it's",
        "late",
        "i'll",
        "go",
    ]


@pytest.mark.unit
def test_a_missing_library_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(wt.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(RuntimeError, match="libespeak-ng not found"):
        wt.word_end_times({"voice": "en", "rate": 175, "pitch": 50, "spoken": "hello"})


@needs_espeak
@pytest.mark.unit
def test_the_library_synthesis_is_the_clis_wav_sample_for_sample(tmp_path):
    for spoken, voice, rate, pitch in CASES:
        raw = tmp_path / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(raw), spoken], check=True
        )
        with wave.open(str(raw), "rb") as w:
            cli = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        entry = {"voice": voice, "rate": rate, "pitch": pitch, "spoken": spoken}
        with wt._pool(1) as pool:  # twice in one pool: each synthesis has a fresh process
            runs = [pool.apply(wt._synthesize_entry, (entry,)) for _ in range(2)]
        for syn in runs:
            np.testing.assert_array_equal(syn.pcm, cli)


@needs_espeak
@pytest.mark.unit
def test_word_times_fit_the_synthesized_wavs(tmp_path):
    for entry in _entries(tmp_path):
        timing = wt.word_timing(entry)
        frames = _wav_frames(entry["audio_filepath"])
        assert timing.num_samples == frames  # the trim and the 16 kHz length are synthesize's own
        assert timing.words == entry["text"].split()
        assert len(timing.ends) == len(timing.starts) == len(entry["text"].split())
        assert all(b > a for a, b in zip(timing.ends, timing.ends[1:], strict=False))
        assert all(s < e for s, e in zip(timing.starts, timing.ends, strict=True))
        assert all(e <= s for e, s in zip(timing.ends, timing.starts[1:], strict=False))  # a word ends before the next
        assert timing.ends[-1] == timing.voiced_end
        assert 0.0 <= frames / SAMPLE_RATE - timing.ends[-1] <= 0.06  # trim_silence keeps 50 ms after the voice
        assert wt.word_end_times(entry) == timing.ends


@needs_espeak
@pytest.mark.unit
def test_a_sentence_end_leaves_a_pause_between_a_word_end_and_the_next_start(tmp_path):
    entry = _entries(tmp_path)[1]
    timing = wt.word_timing(entry)
    k = timing.words.index("berlin")
    pause = timing.starts[k + 1] - timing.ends[k]
    inside = [s - e for e, s in zip(timing.ends[:k], timing.starts[1 : k + 1], strict=True)]
    assert pause > 0.1 and pause > 3 * max(inside)


@needs_espeak
@pytest.mark.unit
def test_corpus_word_end_times_reads_a_meta_file(tmp_path, capsys):
    entries = _entries(tmp_path)
    meta = tmp_path / "meta" / "test.jsonl"
    meta.parent.mkdir()
    meta.write_text("".join(json.dumps(e) + "\n" for e in entries))
    times = wt.corpus_word_end_times(meta, workers=2)
    assert list(times) == [e["audio_filepath"] for e in entries]
    assert [times[e["audio_filepath"]] for e in entries] == [wt.word_end_times(e) for e in entries]
    assert "word times: 2/2 utterances" in capsys.readouterr().out
