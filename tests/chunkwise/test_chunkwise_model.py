"""A chunkwise AlignerEncoderModel end to end: it learns, restores in a fresh process, and streams what it reads.

The tiny model learns the tone corpus (conftest), then: offline ``transcribe()`` == ``StreamingTranscriber`` fed
in random piece sizes; the stream's state stays bounded; configs that cannot stream are refused by name.
"""

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import REPO, manifest_batch, overfit, tiny_cfg

CHUNKWISE = {
    "aligner_type": "chunkwise",
    "preprocessor": {"normalize": "NA"},
    "chunkwise": {"chunk_size": 4, "left_chunks": 2},
    "aux_ctc": {"weight": 0.0},
}


def chunkwise_model(tokenizer_dir, **overrides):
    from nemo_aligner_plugin import AlignerEncoderModel

    cfg = tiny_cfg(tokenizer_dir, "aligner_demo", model={**CHUNKWISE, **overrides})
    return AlignerEncoderModel(cfg.model)


@pytest.fixture(scope="module")
def trained_chunkwise(tmp_path_factory, tokenizer_dir, tone_manifest):
    """A tiny chunkwise aligner overfit on the tone corpus, and its .nemo."""
    torch.manual_seed(0)
    model = chunkwise_model(tokenizer_dir)
    batch, texts = manifest_batch(model, tone_manifest)
    overfit(model, batch, texts, max_steps=400)
    path = tmp_path_factory.mktemp("chunkwise") / "tiny_chunkwise.nemo"
    model.save_to(str(path))
    return model.eval(), path


def files_of(manifest):
    return [json.loads(line) for line in manifest.read_text().splitlines()]


@pytest.mark.unit
def test_the_model_is_configured_for_cache_aware_streaming(tokenizer_dir):
    model = chunkwise_model(tokenizer_dir)
    assert list(model.cfg.encoder.att_context_size) == [8, 3]
    assert model.cfg.encoder.att_context_style == "chunked_limited"
    assert model.cfg.encoder.conv_context_size == "causal" and model.cfg.encoder.causal_downsampling
    assert model.cfg.decoding.strategy == "chunkwise_greedy"
    assert model.cfg.decoding.chunkwise.chunk_size == 4 and model.cfg.decoding.chunkwise.max_labels_per_chunk == 4


@pytest.mark.unit
def test_learns_and_restores_in_a_fresh_process(trained_chunkwise, tone_manifest):
    _, path = trained_chunkwise
    entries = files_of(tone_manifest)
    code = f"""
        import json
        from nemo_aligner_plugin import AlignerEncoderModel
        model = AlignerEncoderModel.restore_from({str(path)!r})
        hyps = model.transcribe({[e["audio_filepath"] for e in entries]!r}, batch_size=4, verbose=False)
        print(json.dumps([model.cfg.aligner_type] + [h.text for h in hyps]))
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    kind, *texts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert kind == "chunkwise" and texts == [e["text"] for e in entries]


@pytest.mark.unit
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_in_any_piece_sizes_equals_offline(trained_chunkwise, tone_manifest, seed):
    from nemo_aligner_plugin.chunkwise.transcriber import StreamingTranscriber

    model, _ = trained_chunkwise
    entries = files_of(tone_manifest)
    offline = [h.text for h in model.transcribe([e["audio_filepath"] for e in entries], batch_size=1, verbose=False)]
    rng = np.random.default_rng(seed)
    streamer = StreamingTranscriber(model)
    for entry, expected in zip(entries, offline, strict=True):
        audio, _ = sf.read(entry["audio_filepath"], dtype="float32")
        streamer.reset()
        pieces, start = [], 0
        while start < len(audio):
            size = int(rng.choice([0, 1, 37, 160, 641, 4000]))
            pieces.append(streamer.feed(audio[start : start + size]))
            start += size
        final = streamer.finish()
        assert final == expected == entry["text"]
        assert "".join(pieces) + final[len("".join(pieces)) :] == final  # partials are prefixes of the final text
        with torch.no_grad():
            _, frames = model(input_signal=torch.tensor(audio)[None], input_signal_length=torch.tensor([len(audio)]))
        assert len(streamer.emissions) == math.ceil(int(frames) / 4)  # one emission per encoder chunk


@pytest.mark.unit
def test_stream_state_stays_bounded(trained_chunkwise):
    from nemo_aligner_plugin.chunkwise.transcriber import StreamingTranscriber

    model, _ = trained_chunkwise
    streamer = StreamingTranscriber(model)
    rng = np.random.default_rng(0)

    def state_numel() -> int:
        tensors = {**streamer._features.state_tensors(), **streamer._encoder.state_tensors()}
        return sum(t.numel() for t in tensors.values())

    sizes = []  # after each second; what is buffered depends on where the second ends within a chunk
    for _ in range(60):
        streamer.feed((0.05 * rng.standard_normal(16000)).astype(np.float32))
        sizes.append(state_numel())
    assert max(sizes[30:]) <= max(sizes[:30])  # no growth with stream length
    streamer.finish()
    with pytest.raises(RuntimeError, match="finished"):
        streamer.feed(np.zeros(160, np.float32))


@pytest.mark.unit
def test_bad_audio_and_models_that_cannot_stream_are_refused(trained_chunkwise, trained_nemo):
    from nemo_aligner_plugin import AlignerEncoderModel
    from nemo_aligner_plugin.chunkwise.transcriber import StreamingTranscriber

    model, _ = trained_chunkwise
    streamer = StreamingTranscriber(model)
    with pytest.raises(ValueError, match="NaN or infinite"):
        streamer.feed(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="1-D"):
        streamer.feed(np.zeros((2, 160), np.float32))
    with pytest.raises(ValueError, match="aligner_type=chunkwise"):
        StreamingTranscriber(AlignerEncoderModel.restore_from(str(trained_nemo)))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"preprocessor": {"normalize": "per_feature"}}, "normalize"),
        ({"nonar_aux": {"weight": 0.5}}, "nonar_aux"),
        ({"reverse_audio": True}, "reverse_audio"),
        ({"chunkwise": {"chunk_size": 4, "max_labels_per_chunk": 5}}, "max_labels_per_chunk"),
        ({"decoding": {"strategy": "beam"}}, "chunkwise_greedy"),
        ({"decoding": {"chunkwise": {"chunk_size": 8}}}, "differs"),
    ],
)
def test_configs_that_cannot_stream_name_the_key(tokenizer_dir, overrides, message):
    with pytest.raises(ValueError, match=message):
        chunkwise_model(tokenizer_dir, **overrides)


@pytest.mark.unit
def test_chunkwise_greedy_is_refused_for_an_offline_aligner(trained_nemo):
    from nemo_aligner_plugin import AlignerEncoderModel

    model = AlignerEncoderModel.restore_from(str(trained_nemo))
    with pytest.raises(ValueError, match="aligner_type=chunkwise"):
        model.change_decoding_strategy({"strategy": "chunkwise_greedy"})


@pytest.mark.unit
def test_stream_file_recipe_reads_mono_and_stereo_44k(trained_chunkwise, tone_manifest, tmp_path):
    """recipes/stream_file.py as the README runs it: the transcript, the RTF line; any rate and channel count."""
    from scipy.signal import resample_poly

    _, path = trained_chunkwise
    entry = files_of(tone_manifest)[0]
    audio, rate = sf.read(entry["audio_filepath"], dtype="float32")
    stereo = tmp_path / "stereo44k.flac"
    resampled = resample_poly(audio, 441, 160).astype(np.float32)
    sf.write(stereo, np.stack([resampled, resampled], axis=1), 44100)
    outputs = []
    for wav in (entry["audio_filepath"], str(stereo)):
        command = [sys.executable, "recipes/stream_file.py", str(path), wav]
        proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "RTF" in proc.stdout and "transcript:" in proc.stdout
        outputs.append(proc.stdout)
    assert f"transcript: {entry['text']}\n" in outputs[0]
