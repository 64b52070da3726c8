"""The microphone simulation of the streaming demo: when words count as emitted, latency, RTF, end of speech."""

import numpy as np
import pytest

from nemo_aligner_plugin.demo.streaming_eval import (
    StreamRun,
    simulate_stream,
    speech_end_seconds,
    summarize,
    word_latencies,
)

RATE = 16000


class ScriptedStreamer:
    """Returns the scripted text at the given feed() call numbers (0-based); finish() returns the whole text."""

    def __init__(self, script: dict[int, str], final_extra: str = ""):
        self.script, self.calls, self.text, self.final_extra = script, 0, "", final_extra

    def feed(self, samples) -> str:
        new = self.script.get(self.calls, "")
        self.calls += 1
        self.text += new
        return new

    def finish(self) -> str:
        return self.text + self.final_extra


@pytest.mark.unit
def test_a_word_counts_when_it_has_its_final_form():
    # 40 ms pieces of 1 s audio + 0.2 s tail: call k arrives at (k + 1) * 0.04 s
    streamer = ScriptedStreamer({4: "eight", 9: "y nine", 20: " ten"})
    run = simulate_stream(streamer, np.zeros(RATE, np.float32), RATE, piece_seconds=0.04, tail_seconds=0.2)
    assert run.text == "eighty nine ten"
    expected = [0.40, 0.40, 0.84]  # "eighty" is whole at call 9, with "nine"; "ten" at call 20
    assert run.word_emitted_at == pytest.approx(expected, abs=0.02)
    assert run.calls == 31  # 30 feeds + finish
    assert run.audio_seconds == pytest.approx(1.2)


@pytest.mark.unit
def test_words_only_finish_gives_are_emitted_at_the_end():
    streamer = ScriptedStreamer({0: "hello"}, final_extra=" world")
    run = simulate_stream(streamer, np.zeros(RATE // 2, np.float32), RATE, tail_seconds=0.5)
    assert run.word_emitted_at[0] == pytest.approx(0.04, abs=0.02)
    assert run.word_emitted_at[1] == pytest.approx(1.0, abs=0.02)


@pytest.mark.unit
def test_a_slow_recognizer_accumulates_delay():
    class Slow(ScriptedStreamer):
        def feed(self, samples):
            import time

            time.sleep(0.02)  # 20 ms of compute per 10 ms piece: half real-time speed
            return super().feed(samples)

    run = simulate_stream(Slow({49: "late"}), np.zeros(RATE // 2, np.float32), RATE, piece_seconds=0.01, tail_seconds=0)
    assert run.compute_seconds / run.audio_seconds > 1.5
    assert run.word_emitted_at[0] > 0.9  # audio ends at 0.5 s, but 50 calls of 20 ms end after 1 s


@pytest.mark.unit
def test_latency_counts_only_words_aligned_as_correct():
    run = StreamRun("the big cat sat", [1.0, 1.5, 2.0, 3.0], 3.0, 0.3)
    latencies = word_latencies("the cat sat", run, [0.5, 1.2, 2.5])
    assert latencies == pytest.approx([0.5, 0.8, 0.5])  # "big" is an insertion; the/cat/sat are matched
    with pytest.raises(ValueError, match="word end times"):
        word_latencies("the cat", run, [0.5])
    assert word_latencies("the cat", StreamRun("", [], 1.0, 0.1), [0.5, 1.0]) == []


@pytest.mark.unit
def test_summary_percentiles_and_rtf():
    runs = [StreamRun("a b", [0.1, 0.2], 2.0, 0.2), StreamRun("c", [0.5], 2.0, 0.2)]
    summary = summarize(["a b", "c d"], runs, latencies=[0.1, 0.2, 0.3], chunk_count=lambda r: 4)
    assert summary["wer"] == pytest.approx(25.0)
    assert summary["rtf"] == pytest.approx(0.1)
    assert summary["ms_per_chunk"] == pytest.approx(50.0)
    assert summary["latency_ms"]["median"] == pytest.approx(200.0)


@pytest.mark.unit
def test_speech_end_is_the_last_loud_frame():
    t = np.arange(RATE) / RATE
    audio = np.concatenate([0.5 * np.sin(2 * np.pi * 440 * t), 1e-4 * np.ones(RATE // 2)]).astype(np.float32)
    assert speech_end_seconds(audio, RATE) == pytest.approx(1.0, abs=0.011)
    assert speech_end_seconds(np.zeros(RATE, np.float32), RATE) is None
    assert speech_end_seconds(np.zeros(10, np.float32), RATE) is None
