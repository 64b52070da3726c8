"""``model.nonspeech``: generated non-speech rows with empty targets (nemo_aligner_plugin/nonspeech.py)."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from conftest import tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.config import NonSpeechConfig, read_section
from nemo_aligner_plugin.loss import AlignerLoss
from nemo_aligner_plugin.nonspeech import (
    KINDS,
    NonSpeechRows,
    generate,
    inference_features_for_silent_rows,
    silent_rows,
)

SR = 16000


def batch(rows: int = 16, samples: int = 8000, tokens: int = 5):
    audio = torch.rand(rows, samples) + 0.5  # never 0: a zero sample is non-speech or padding
    lens = torch.full((rows,), samples)
    lens[1] = samples // 2
    return audio, lens, torch.randint(1, 9, (rows, tokens)), torch.full((rows,), tokens)


@pytest.mark.unit
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_has_its_length_and_level_and_repeats_with_its_seed(kind):
    first = generate(kind, 12345, -40.0, SR, torch.Generator().manual_seed(3))
    again = generate(kind, 12345, -40.0, SR, torch.Generator().manual_seed(3))
    assert first.shape == (12345,) and first.dtype == torch.float32 and torch.equal(first, again)
    rms_db = 20 * torch.log10(first.pow(2).mean().sqrt().clamp(min=1e-20))
    assert float(rms_db) == pytest.approx(-40.0, abs=0.01) if kind != "silence" else not first.any()


@pytest.mark.unit
def test_noise_colours_tilt_the_spectrum_the_named_way():
    def high_share(kind):  # share of the power above 2 kHz
        x = generate(kind, SR * 4, -30.0, SR, torch.Generator().manual_seed(0)).double()
        power = torch.fft.rfft(x).abs().pow(2)
        return float(power[int(2000 * 4) :].sum() / power.sum())

    shares = [high_share(k) for k in ("brown", "pink", "white", "blue", "violet")]
    assert shares == sorted(shares) and shares[0] < 0.01 and shares[-1] > 0.95


@pytest.mark.unit
def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match=r"'babble'.*expected one of"):
        generate("babble", 100, -30.0, SR, torch.Generator())
    with pytest.raises(ValueError, match=r"model.nonspeech.kinds=\['white', 'babble'\]"):
        NonSpeechConfig(kinds=["white", "babble"])


@pytest.mark.unit
@pytest.mark.parametrize(
    "values, field",
    [
        ({"fraction": 1.5}, "nonspeech.fraction"),
        ({"kinds": []}, "nonspeech.kinds"),
        ({"level_dbfs": [-20.0, -40.0]}, "nonspeech.level_dbfs"),
        ({"level_dbfs": [-20.0, 5.0]}, "nonspeech.level_dbfs"),
        ({"min_seconds": 2.0, "max_seconds": 1.0}, "nonspeech.min/max_seconds"),
        ({"manifest_prob": -0.1}, "nonspeech.manifest_prob"),
        ({"start_step": -1}, "nonspeech.start_step"),
        ({"fraktion": 0.1}, r"model.nonspeech has unknown key\(s\) \['fraktion'\]"),
    ],
)
def test_bad_options_name_their_field(values, field):
    with pytest.raises(ValueError, match=field):
        read_section({"nonspeech": values}, "nonspeech")


@pytest.mark.unit
def test_the_fraction_holds_in_every_batch_and_only_chosen_rows_change():
    rows = NonSpeechRows(NonSpeechConfig(fraction=0.25, min_seconds=0.1), SR)
    audio, lens, tokens, token_lens = batch()
    for step in range(20):
        a, al, t, tl = rows(audio, lens, tokens, token_lens, step)
        empty = (tl == 0).nonzero().flatten().tolist()
        assert len(empty) == 4  # 0.25 * 16: exact, nothing to round
        kept = [i for i in range(16) if i not in empty]
        assert torch.equal(a[kept], audio[kept]) and torch.equal(al[kept], lens[kept])
        assert torch.equal(t[kept], tokens[kept]) and torch.equal(tl[kept], token_lens[kept])
        assert all(int(0.1 * SR) <= int(al[i]) <= 8000 for i in empty)
        assert all(not a[i, al[i] :].any() for i in empty)  # past its length a row is padding


@pytest.mark.unit
def test_a_fractional_count_is_rounded_at_random_to_the_right_mean():
    rows = NonSpeechRows(NonSpeechConfig(fraction=0.1), SR)
    counts = [int((rows(*batch(), step=s)[3] == 0).sum()) for s in range(300)]
    assert set(counts) == {1, 2} and sum(counts) / len(counts) == pytest.approx(1.6, abs=0.1)


@pytest.mark.unit
def test_draws_depend_on_seed_step_and_rank_only():
    rows = NonSpeechRows(NonSpeechConfig(fraction=0.25), SR)
    data = batch()
    torch.manual_seed(0)
    first = rows(*data, step=7, rank=0)
    torch.manual_seed(99)  # the global random stream (dropout, SpecAugment, joining) plays no part
    torch.rand(5)
    again = rows(*data, step=7, rank=0)
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    other_rank = rows(*data, step=7, rank=1)
    other_seed = NonSpeechRows(NonSpeechConfig(fraction=0.25, seed=1), SR)(*data, step=7, rank=0)
    assert not torch.equal(first[0], other_rank[0]) and not torch.equal(first[0], other_seed[0])


@pytest.mark.unit
def test_off_or_before_start_step_is_the_identity():
    data = batch()
    assert NonSpeechRows(NonSpeechConfig(), SR)(*data, step=5)[0] is data[0]
    late = NonSpeechRows(NonSpeechConfig(fraction=0.5, start_step=10), SR)
    assert late(*data, step=9)[0] is data[0] and int((late(*data, step=10)[3] == 0).sum()) == 8


@pytest.mark.unit
def test_max_seconds_longer_than_the_batch_widens_it():
    rows = NonSpeechRows(NonSpeechConfig(fraction=1.0, min_seconds=1.0, max_seconds=1.0), SR)
    a, al, _, tl = rows(*batch(rows=2, samples=4000), step=0)
    assert a.shape == (2, SR) and al.tolist() == [SR, SR] and tl.tolist() == [0, 0]


@pytest.mark.unit
def test_clips_come_from_the_users_manifest(tmp_path):
    sf.write(tmp_path / "hold_music.wav", np.sin(np.arange(SR * 3) * 0.05) * 0.1, SR)
    noise = sf.read(tmp_path / "hold_music.wav", dtype="float32")[0]
    manifest = tmp_path / "noise.json"
    manifest.write_text(json.dumps({"audio_filepath": "hold_music.wav", "duration": 3.0}) + "\n")  # relative
    cfg = NonSpeechConfig(fraction=0.5, manifest_filepath=str(manifest), manifest_prob=1.0)
    a, al, _, tl = NonSpeechRows(cfg, SR)(*batch(rows=4), step=0)
    for row in (tl == 0).nonzero().flatten().tolist():
        clip = a[row, : al[row]].numpy()
        starts = [i for i in range(noise.size - clip.size + 1) if np.array_equal(noise[i : i + 4], clip[:4])]
        assert any(np.array_equal(noise[s : s + clip.size], clip) for s in starts)


@pytest.mark.unit
def test_a_missing_or_unreadable_manifest_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.nonspeech.manifest_filepath=.*nowhere.json"):
        NonSpeechRows(NonSpeechConfig(fraction=0.1, manifest_filepath=str(tmp_path / "nowhere.json")), SR).prepare()
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    manifest = tmp_path / "noise.json"
    manifest.write_text(json.dumps({"audio_filepath": str(tmp_path / "broken.wav")}) + "\n")
    rows = NonSpeechRows(NonSpeechConfig(fraction=1.0, manifest_filepath=str(manifest), manifest_prob=1.0), SR)
    with pytest.raises(ValueError, match="cannot read .*broken.wav"):
        rows(*batch(rows=2), step=0)
    (tmp_path / "gone.json").write_text(json.dumps({"audio_filepath": "gone.wav"}) + "\n")
    with pytest.raises(FileNotFoundError, match=r"1 of 1 audio files do not exist, e.g. \[.*gone.wav"):
        NonSpeechRows(NonSpeechConfig(fraction=0.1, manifest_filepath=str(tmp_path / "gone.json")), SR)(
            *batch(rows=2), step=0
        )


@pytest.mark.unit
def test_a_model_restores_without_its_training_noise_manifest(tokenizer_dir, tmp_path):
    """The noise manifest is training data: a model trained with one loads and transcribes where it is absent."""
    options = {"nonspeech": {"fraction": 0.1, "manifest_filepath": str(tmp_path / "elsewhere.json")}}
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model=options).model)
    model.save_to(str(tmp_path / "model.nemo"))
    restored = AlignerEncoderModel.restore_from(str(tmp_path / "model.nemo"))
    assert restored.transcribe([np.zeros(8000, dtype=np.float32)], verbose=False)[0].text is not None
    with pytest.raises(FileNotFoundError, match="elsewhere.json"):
        restored.augmentation.nonspeech.prepare()  # what on_train_start calls


@pytest.mark.unit
def test_loss_of_an_empty_target_is_eos_at_the_first_position():
    logits = torch.randn(3, 4, 6)  # (B, U+1, V+1), EOS = 5
    targets, target_lens = torch.tensor([[1, 2, 3], [0, 0, 0], [4, 0, 0]]), torch.tensor([3, 0, 1])
    loss = AlignerLoss(eos_id=5, label_smoothing=0.0, reduction="sum")
    kwargs = dict(targets=targets, target_lengths=target_lens, encoder_lengths=torch.tensor([9, 9, 9]))
    log_probs = logits.log_softmax(-1)
    full, empty, short = log_probs[0, [0, 1, 2, 3], [1, 2, 3, 5]], log_probs[1, 0, 5], log_probs[2, [0, 1], [4, 5]]
    expected = -(full.sum() + empty + short.sum())
    assert float(loss(logits=logits, **kwargs)) == pytest.approx(float(expected), rel=1e-5)
    mean = AlignerLoss(eos_id=5, label_smoothing=0.0, reduction="mean_token")(logits=logits, **kwargs)
    assert float(mean) == pytest.approx(float(expected) / 7, rel=1e-5)  # the empty row counts its one EOS
    only_empty = AlignerLoss(
        eos_id=5
    )(  # a batch of empty rows only: U = 0, uniform smoothing fallback
        logits=logits[:, :1], targets=targets[:, :0], target_lengths=torch.zeros(3), encoder_lengths=torch.ones(3)
    )
    assert torch.isfinite(only_empty)


@pytest.mark.unit
def test_digital_silence_trains_on_the_features_inference_gives_it(tokenizer_dir):
    cfg = tiny_cfg(tokenizer_dir, model={"preprocessor": {"dither": 1e-5}})
    model = AlignerEncoderModel(cfg.model).train()
    audio = torch.zeros(3, 16000)
    audio[0] = torch.randn(16000) * 0.1
    lens = torch.tensor([16000, 12000, 0])
    silent = silent_rows(audio, lens)
    assert silent.tolist() == [False, True, False]
    features, _ = model.preprocessor(input_signal=audio, length=lens)  # dithers `audio` in place
    fixed = inference_features_for_silent_rows(model.preprocessor, silent, lens, features)
    model.preprocessor.eval()
    alone, _ = model.preprocessor(input_signal=torch.zeros(1, 12000), length=lens[1:2])
    assert torch.equal(fixed[0], features[0])  # speech keeps its training-mode (dithered) features
    assert torch.equal(fixed[1, :, : alone.size(2)], alone[0]) and not fixed[1, :, alone.size(2) :].any()
    assert not torch.equal(features[1], fixed[1])  # dither had made the silent row noise
    assert torch.equal(fixed[2], features[2])  # an empty row is left alone


@pytest.mark.unit
@pytest.mark.parametrize("use_lhotse", [True, False], ids=["lhotse", "legacy"])
def test_training_steps_take_empty_rows_from_either_loader(tokenizer_dir, tone_manifest, use_lhotse, monkeypatch):
    options = {"nonspeech": {"fraction": 0.5, "min_seconds": 0.2}, "concat_utterances": {"fraction": 0.0}}
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model=options).model)
    train_ds = {**OmegaConf.to_container(model.cfg.train_ds), "manifest_filepath": str(tone_manifest)}
    train_ds.update(use_lhotse=use_lhotse, shuffle=False, batch_size=4, min_duration=0.0)
    model.setup_training_data(OmegaConf.create(train_ds))
    seen = []
    compute_loss = model.compute_loss

    def record(encoded, encoded_len, transcript, transcript_len, **kwargs):
        seen.append(transcript_len.clone())
        return compute_loss(encoded, encoded_len, transcript, transcript_len, **kwargs)

    monkeypatch.setattr(model, "compute_loss", record)
    monkeypatch.setattr(model, "log_dict", lambda *args, **kwargs: None)
    model._optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    model._trainer = type("T", (), {"global_step": 0, "log_every_n_steps": 1000})()
    losses = [model.training_step(b, i)["loss"] for i, b in enumerate(model._train_dl)]
    assert [int((lens == 0).sum()) for lens in seen] == [2, 2] and all(torch.isfinite(x) for x in losses)
