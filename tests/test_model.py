"""AlignerEncoderModel: configs, learning, decoding-strategy plumbing and error paths."""

import json

import pytest
import soundfile as sf
import torch
from nemo.collections.asr.parts.submodules.rnnt_decoding import RNNTBPEDecodingConfig, RNNTDecodingConfig
from omegaconf import OmegaConf

from conftest import CONFIGS, SAMPLE_RATE, manifest_batch, overfit, tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.decoding.nemo_glue import AlignerDecodingComputer


@pytest.mark.unit
@pytest.mark.parametrize(
    "config_name, frames_per_second, min_params, max_params",
    [
        ("aligner_conformer_bpe", 25, 90e6, 130e6),
        ("aligner_fastconformer_bpe", 13, 90e6, 130e6),
    ],  # 1 s = 100 mel frames,
)
def test_shipped_configs_build_the_documented_model(
    tokenizer_dir, config_name, frames_per_second, min_params, max_params
):
    cfg = OmegaConf.load(CONFIGS / f"{config_name}.yaml")
    cfg.model.tokenizer.dir = str(tokenizer_dir)
    cfg.model.train_ds.manifest_filepath = None
    OmegaConf.resolve(cfg)
    model = AlignerEncoderModel(cfg.model).eval()
    params = sum(p.numel() for p in model.parameters())
    assert min_params < params < max_params, params  # paper: ~100M for the LibriSpeech model
    assert model.encoder.n_layers == 17 and model.cfg.encoder.d_model == 512
    assert model.decoder.pred_hidden == 640 and model.cfg.preprocessor.features == 80
    assert model.cfg.loss.label_smoothing == 0.1 and model.cfg.loss.smoothing_mode == "batch_prior"
    with torch.no_grad():
        _, encoded_len = model(
            input_signal=torch.zeros(1, SAMPLE_RATE), input_signal_length=torch.tensor([SAMPLE_RATE])
        )
    assert encoded_len.item() == frames_per_second


@pytest.mark.unit
def test_tiny_model_overfits_until_transcripts_are_exact(tokenizer_dir, tone_manifest):
    """Exact greedy transcripts need the encoder to place token i at frame i and the model to emit EOS."""
    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model)
    batch, texts = manifest_batch(model, tone_manifest)
    steps = overfit(model, batch, texts)
    files = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()]
    hyps = model.transcribe(files, batch_size=3, verbose=False)
    assert [h.text for h in hyps] == texts, f"after {steps} steps"


@pytest.mark.unit
def test_change_decoding_strategy_accepts_rnnt_configs_and_keeps_aligner_decoding(trained_nemo, tone_manifest):
    model = AlignerEncoderModel.restore_from(str(trained_nemo)).eval()
    batch, texts = manifest_batch(model, tone_manifest)
    with torch.no_grad():
        encoded, encoded_len = model(input_signal=batch[0], input_signal_length=batch[1])
    before = [h.text for h in model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len)]
    assert before == texts
    for rnnt_cfg in (RNNTDecodingConfig(fused_batch_size=-1), RNNTBPEDecodingConfig(strategy="greedy")):
        model.change_decoding_strategy(OmegaConf.structured(rnnt_cfg))
        assert isinstance(model.decoding.decoding, AlignerDecodingComputer)
        assert model.cfg.decoding.strategy == "greedy_batch"
        after = [h.text for h in model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len)]
        assert after == before
    model.change_decoding_strategy({"strategy": "greedy_batch", "greedy": {"max_tokens": 1}})
    capped = model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len, return_hypotheses=True)
    assert max(len(h.y_sequence) for h in capped) == 1


@pytest.mark.unit
@pytest.mark.parametrize(
    "decoding_cfg, error, match",
    [
        ({"strategy": "maes", "beam": {"beam_size": 0}}, ValueError, "beam_size"),
        ({"strategy": "viterbi"}, ValueError, "decoding.strategy='viterbi'"),
    ],
)
def test_bad_decoding_configs_are_refused_clearly(trained_nemo, decoding_cfg, error, match):
    model = AlignerEncoderModel.restore_from(str(trained_nemo))
    with pytest.raises(error, match=match):
        model.change_decoding_strategy(decoding_cfg)
    assert model.cfg.decoding.strategy == "greedy_batch"  # unchanged after a refused change


@pytest.mark.unit
def test_utterance_longer_than_its_encoder_is_skipped_and_counted(tokenizer_dir, tmp_path):
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model)
    audio = torch.randn(2, SAMPLE_RATE) * 0.1
    audio_lens = torch.tensor([SAMPLE_RATE, SAMPLE_RATE // 10])  # 1 s -> 25 frames; 0.1 s -> 3 frames
    tokens = torch.tensor([model.tokenizer.text_to_ids("ab cd ef gh")[:5]] * 2)
    encoded, encoded_len = model(input_signal=audio, input_signal_length=audio_lens)
    loss = model.compute_loss(encoded, encoded_len, tokens, torch.tensor([5, 5]))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.loss.num_skipped_last == 1
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.unit
def test_validation_skips_are_counted_apart_from_training(tokenizer_dir, monkeypatch):
    """A validation (or sanity-check) batch with unalignable utterances must not reach the training count or warn."""
    from nemo.utils import logging

    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model)
    audio = torch.randn(2, SAMPLE_RATE) * 0.1
    audio_lens = torch.tensor([SAMPLE_RATE, SAMPLE_RATE // 10])
    tokens = torch.tensor([model.tokenizer.text_to_ids("ab cd ef gh")[:5]] * 2)
    with monkeypatch.context() as patch:
        warnings = []
        patch.setattr(logging, "warning", lambda message, *a, **k: warnings.append(message))
        model.eval()
        with torch.no_grad():
            logs = model.validation_pass((audio, audio_lens, tokens, torch.tensor([5, 5])), 0)
    assert logs["val_skipped_utts"] == 1.0
    assert (model.skipped_val.total, model.skipped_train.total) == (1, 0)
    assert not [w for w in warnings if "skipped" in w]


@pytest.mark.unit
def test_missing_config_section_is_named(tokenizer_dir):
    cfg = tiny_cfg(tokenizer_dir).model
    del cfg["joint"]
    with pytest.raises(ValueError, match="model.joint"):
        AlignerEncoderModel(cfg)


@pytest.mark.unit
def test_transcribe_accepts_numpy_audio(trained_nemo, tone_manifest):
    model = AlignerEncoderModel.restore_from(str(trained_nemo))
    first = json.loads(tone_manifest.read_text().splitlines()[0])
    audio, _ = sf.read(first["audio_filepath"], dtype="float32")
    hyps = model.transcribe([audio], batch_size=1, verbose=False)
    assert hyps[0].text == first["text"]


@pytest.mark.unit
def test_transcribe_with_timestamps_gives_nemo_style_word_times(trained_nemo, tone_manifest):
    model = AlignerEncoderModel.restore_from(str(trained_nemo))
    files = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()][:3]
    plain = [h.text for h in model.transcribe(files, batch_size=3, verbose=False)]
    hyps = model.transcribe(files, batch_size=3, verbose=False, timestamps=True)
    for hyp, text in zip(hyps, plain, strict=True):
        assert hyp.text == text
        assert {"timestep", "char", "word", "segment"} <= set(hyp.timestamp)
        assert " ".join(w["word"] for w in hyp.timestamp["word"]) == text
        starts = [w["start"] for w in hyp.timestamp["word"]]
        assert all(0.0 <= s for s in starts)
    # Issue 25 item 3: timestamps=True is for that call only (it left compute_timestamps on, and long audio was
    # then refused even with long-form enabled).
    assert not model.cfg.decoding.compute_timestamps
    assert [h.timestamp for h in model.transcribe(files, batch_size=3, verbose=False, return_hypotheses=True)][0].ndim
    model.change_decoding_strategy({"strategy": "greedy_batch", "compute_timestamps": True}, verbose=False)
    model.transcribe(files[:1], batch_size=1, verbose=False, timestamps=False)
    assert model.cfg.decoding.compute_timestamps  # a setting of the model's own survives a per-call override


@pytest.mark.unit
def test_train_durations_are_recorded_from_the_admitted_training_utterances(tokenizer_dir, tmp_path):
    from nemo_aligner_plugin.integration.data import train_durations

    manifest = tmp_path / "train_manifest.json"
    seconds = [0.5, 1.0, 2.0, 3.0, 40.0]  # 40 s is above max_duration: not admitted, not counted
    lines = [json.dumps({"audio_filepath": "x.wav", "duration": d, "text": "a"}) for d in seconds]
    manifest.write_text("\n".join(lines) + "\n")
    stats = train_durations(OmegaConf.create({"manifest_filepath": str(manifest), "max_duration": 20.0}))
    assert (stats.p50_seconds, stats.max_seconds, stats.num_utterances) == (1.5, 3.0, 4)
    assert stats.p99_seconds == pytest.approx(2.97)
    cfg = tiny_cfg(tokenizer_dir, model={"train_ds": {"manifest_filepath": str(manifest), "max_duration": 20.0}})
    model = AlignerEncoderModel(cfg.model)
    model.on_train_start()
    assert model.cfg.train_durations.num_utterances == 4 and model.cfg.train_durations.max_seconds == 3.0


@pytest.mark.unit
def test_unknown_aligner_type_and_section_keys_are_named(tokenizer_dir):
    with pytest.raises(ValueError, match="model.aligner_type must be one of"):
        AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"aligner_type": "diagonal"}).model)
    with pytest.raises(ValueError, match=r"model.loss has unknown key\(s\) \['smoothing'\]"):
        AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"loss": {"smoothing": 0.1}}).model)
