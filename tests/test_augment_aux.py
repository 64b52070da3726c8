"""Utterance concatenation and the auxiliary losses (CTC head, intermediate aligner loss)."""

import pytest
import torch

from conftest import tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.augment import concatenate_utterances, pad_silence, reverse_within_length


@pytest.mark.unit
def test_concatenate_utterances_joins_pairs_of_audio_and_tokens_exactly():
    audio = torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0], [3.0, 3.0, 3.0], [4.0, 4.0, 0.0]])
    audio_lens = torch.tensor([2, 1, 3, 2])
    tokens = torch.tensor([[11, 0], [21, 22], [31, 0], [41, 42]])
    token_lens = torch.tensor([1, 2, 1, 2])
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(4, generator=torch.Generator().manual_seed(0)).tolist()
    a, al, t, tl = concatenate_utterances(
        audio, audio_lens, tokens, token_lens, fraction=0.5, gap_samples=2, generator=gen
    )
    first, second = order[0], order[1]
    untouched = [i for i in range(4) if i not in (first, second)]
    assert a.size(0) == 3 and al.tolist()[:2] == audio_lens[untouched].tolist()
    joined = torch.cat([audio[first, : audio_lens[first]], torch.zeros(2), audio[second, : audio_lens[second]]])
    assert torch.equal(a[2, : al[2]], joined)
    assert (
        t[2, : tl[2]].tolist()
        == tokens[first, : token_lens[first]].tolist() + tokens[second, : token_lens[second]].tolist()
    )
    assert torch.equal(a[0, : al[0]], audio[untouched[0], : audio_lens[untouched[0]]])


@pytest.mark.unit
def test_concatenate_utterances_fraction_zero_is_identity():
    audio, lens = torch.randn(4, 10), torch.full((4,), 10)
    tokens, tlens = torch.ones(4, 3, dtype=torch.long), torch.full((4,), 3)
    out = concatenate_utterances(audio, lens, tokens, tlens, fraction=0.0)
    assert out[0] is audio and out[2] is tokens


@pytest.mark.unit
def test_concatenate_utterances_groups_use_every_utterance_once_in_order():
    """max_joined=3: rows of 2 or 3 utterances; each input row's audio and tokens appear exactly once, gaps between."""
    batch, gap = 12, 3
    audio_lens = torch.randint(2, 7, (batch,), generator=torch.Generator().manual_seed(1))
    audio = torch.zeros(batch, 6)
    for i in range(batch):
        audio[i, : audio_lens[i]] = i + 1  # row i's samples carry its id; padding and gaps are 0
    tokens, token_lens = (torch.arange(batch)[:, None] + 1).repeat(1, 2), torch.full((batch,), 2)
    sizes = set()
    for seed in range(20):
        a, al, t, tl = concatenate_utterances(
            audio, audio_lens, tokens, token_lens, 1.0, gap, max_joined=3, generator=torch.Generator().manual_seed(seed)
        )
        seen = []
        for row in range(a.size(0)):
            samples = a[row, : al[row]]
            ids = t[row, : tl[row]].tolist()[::2]
            sizes.add(len(ids))
            assert samples.unique_consecutive().tolist() == [x for i in ids for x in (i, 0)][:-1]
            assert int(al[row]) == sum(int(audio_lens[i - 1]) for i in ids) + gap * (len(ids) - 1)
            seen += ids
        assert sorted(seen) == list(range(1, batch + 1))
    assert sizes == {2, 3}


@pytest.mark.unit
def test_concatenate_utterances_draws_each_gap_from_the_range():
    """gap_samples=(0, 4): every join keeps both utterances whole, with 0..4 zeros between; some joins have none."""
    batch = 8
    audio, audio_lens = torch.arange(1, batch + 1, dtype=torch.float)[:, None].repeat(1, 5), torch.full((batch,), 5)
    tokens, token_lens = torch.arange(1, batch + 1)[:, None], torch.ones(batch, dtype=torch.long)
    gaps = []
    for seed in range(30):
        a, al, t, tl = concatenate_utterances(
            audio, audio_lens, tokens, token_lens, 1.0, (0, 4), generator=torch.Generator().manual_seed(seed)
        )
        for row in range(a.size(0)):
            first, second = t[row, : tl[row]].tolist()
            samples = a[row, : al[row]]
            gap = int(al[row]) - 10
            assert torch.equal(samples[:5], audio[first - 1]) and torch.equal(samples[5 + gap :], audio[second - 1])
            assert not samples[5 : 5 + gap].any()
            gaps.append(gap)
    assert min(gaps) == 0 and max(gaps) == 4 and len(set(gaps)) == 5


@pytest.mark.unit
def test_pad_silence_puts_zeros_only_around_the_chosen_rows():
    audio = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0], [6.0, 0.0, 0.0], [7.0, 8.0, 9.0]])
    audio_lens = torch.tensor([3, 2, 1, 3])
    padded, unchanged = 0, 0
    for seed in range(40):
        a, al = pad_silence(audio, audio_lens, 0.5, 1, 3, generator=torch.Generator().manual_seed(seed))
        for b in range(4):
            row = a[b, : al[b]]
            speech = audio[b, : audio_lens[b]]
            start = int((row != 0).nonzero()[0])  # the test's speech samples are never 0
            assert torch.equal(row[start : start + len(speech)], speech) and not row[:start].any()
            end = len(row) - start - len(speech)
            assert not row[start + len(speech) :].any()
            if (start, end) == (0, 0):
                unchanged += 1
            else:
                assert 1 <= start <= 3 and 1 <= end <= 3
                padded += 1
    assert 0.35 < padded / (padded + unchanged) < 0.65
    assert pad_silence(audio, audio_lens, 0.0, 1, 3)[0] is audio


@pytest.mark.unit
def test_pad_silence_noise_fills_the_padding_at_each_rows_own_floor():
    """noise=1: every padded row gets Gaussian noise at the RMS of its quietest 160 samples, the row untouched."""
    gen = torch.Generator().manual_seed(0)
    speech = torch.randn(2, 3200, generator=gen)
    speech[0, 1600:1760] *= 0.01  # row 0's floor: one quiet 10 ms window, RMS ~0.01
    speech[1] *= 0.5  # row 1 has no quiet window: its floor is its quietest window, RMS ~0.5 x 0.9
    lens = torch.tensor([3200, 3200])
    a, al = pad_silence(speech, lens, 1.0, 8000, 8000, generator=torch.Generator().manual_seed(1), noise=1.0)
    assert al.tolist() == [19200, 19200]
    for b, floor in enumerate([float(speech[0, 1600:1760].pow(2).mean().sqrt()), None]):
        row = a[b]
        assert torch.equal(row[8000:11200], speech[b])
        pad = torch.cat([row[:8000], row[11200:]])
        windows = speech[b].reshape(-1, 160).pow(2).mean(dim=1).sqrt()
        assert float(pad.pow(2).mean().sqrt()) == pytest.approx(floor or float(windows.min()), rel=0.05)
    mixed = [  # noise=0.5: about half the padded rows noisy, the rest digital zeros
        bool(pad_silence(speech, lens, 1.0, 10, 10, generator=torch.Generator().manual_seed(s), noise=0.5)[0][0, 0])
        for s in range(60)
    ]
    assert 0.3 < sum(mixed) / len(mixed) < 0.7


@pytest.mark.unit
def test_silence_padding_follows_concatenation_and_starts_at_its_step(tokenizer_dir, monkeypatch):
    """Joined rows get silence at their ends only: every row still starts or ends with its own audio in between."""
    cfg = tiny_cfg(
        tokenizer_dir,
        model={
            "concat_utterances": {"fraction": 1.0, "mode": "in_batch", "gap_seconds": 0.0},
            "silence_padding": {"prob": 1.0, "min_seconds": 0.01, "max_seconds": 0.01, "start_step": 2},
        },
    )
    model = AlignerEncoderModel(cfg.model)
    seen = []

    def record(input_signal, input_signal_length):
        seen.append((input_signal.clone(), input_signal_length.clone()))
        raise StopIteration

    monkeypatch.setattr(model, "forward", record)
    audio = torch.rand(4, 1600) + 0.5  # never 0, so zeros are added silence
    batch = (audio, torch.full((4,), 1600), torch.ones(4, 3, dtype=torch.long), torch.full((4,), 3))
    pad = int(0.01 * cfg.model.sample_rate)
    for step in range(3):
        monkeypatch.setattr(type(model), "global_step", property(lambda self, step=step: step))
        with pytest.raises(StopIteration):
            model.training_step(batch, 0)
    assert [lens.tolist() for _, lens in seen] == [[3200, 3200], [3200, 3200], [3200 + 2 * pad] * 2]
    row = seen[2][0][0]
    assert not row[:pad].any() and not row[-pad:].any() and bool((row[pad:-pad] != 0).all())


@pytest.mark.unit
@pytest.mark.parametrize(
    "section, values, field",
    [
        ("silence_padding", {"prob": 1.5}, "silence_padding.prob"),
        ("silence_padding", {"prob": 0.5, "min_seconds": 0.3, "max_seconds": 0.1}, "silence_padding.min/max"),
        ("silence_padding", {"prob": 0.5, "start_step": -1}, "silence_padding.start_step"),
        ("silence_padding", {"prob": 0.5, "noise": 1.5}, "silence_padding.noise"),
        ("concat_utterances", {"gap_seconds": -0.1}, "concat_utterances.gap_seconds"),
        ("concat_utterances", {"gap_seconds": [0.2, 0.1]}, "concat_utterances.gap_seconds"),
    ],
)
def test_silence_and_gap_bad_values_are_named(tokenizer_dir, section, values, field):
    cfg = tiny_cfg(tokenizer_dir, model={section: values})
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        AlignerEncoderModel(cfg.model)


@pytest.mark.unit
@pytest.mark.parametrize("mode", ["in_batch", "whole_batches"])
def test_concat_modes_pair_the_configured_share(tokenizer_dir, mode, monkeypatch):
    """in_batch: every batch loses round(0.25 * 8 / 2) = 1 row; whole_batches: ~25% of batches lose 4 rows."""
    cfg = tiny_cfg(tokenizer_dir, model={"concat_utterances": {"fraction": 0.25, "mode": mode}})
    model = AlignerEncoderModel(cfg.model)
    rows = []

    def record(input_signal, input_signal_length):
        rows.append(input_signal.size(0))
        raise StopIteration  # the forward pass itself is not under test

    monkeypatch.setattr(model, "forward", record)
    torch.manual_seed(0)
    batch = (torch.randn(8, 1600), torch.full((8,), 1600), torch.ones(8, 3, dtype=torch.long), torch.full((8,), 3))
    for _ in range(200):
        with pytest.raises(StopIteration):
            model.training_step(batch, 0)
    if mode == "in_batch":
        assert set(rows) == {7}
    else:
        assert set(rows) == {4, 8} and 0.15 < rows.count(4) / len(rows) < 0.35


@pytest.mark.unit
def test_concat_starts_at_the_configured_step(tokenizer_dir, monkeypatch):
    cfg = tiny_cfg(tokenizer_dir, model={"concat_utterances": {"fraction": 0.5, "mode": "in_batch", "start_step": 3}})
    model = AlignerEncoderModel(cfg.model)
    rows = []

    def record(input_signal, input_signal_length):
        rows.append(input_signal.size(0))
        raise StopIteration

    monkeypatch.setattr(model, "forward", record)
    batch = (torch.randn(8, 1600), torch.full((8,), 1600), torch.ones(8, 3, dtype=torch.long), torch.full((8,), 3))
    for step in range(5):
        monkeypatch.setattr(type(model), "global_step", property(lambda self, step=step: step))
        with pytest.raises(StopIteration):
            model.training_step(batch, 0)
    assert rows == [8, 8, 8, 6, 6]  # steps 0-2 untouched; then round(0.5 * 8 / 2) = 2 pairs


@pytest.mark.unit
@pytest.mark.parametrize("bad", [{"max_joined": 1}, {"start_step": -1}])
def test_concat_bad_values_are_named(tokenizer_dir, bad):
    key = next(iter(bad))
    cfg = tiny_cfg(tokenizer_dir, model={"concat_utterances": {"fraction": 0.2, **bad}})
    with pytest.raises(ValueError, match=f"concat_utterances.{key}"):
        AlignerEncoderModel(cfg.model)


@pytest.mark.unit
def test_unknown_concat_mode_is_named(tokenizer_dir):
    cfg = tiny_cfg(tokenizer_dir, model={"concat_utterances": {"mode": "sometimes"}})
    with pytest.raises(ValueError, match="concat_utterances.mode"):
        AlignerEncoderModel(cfg.model)


@pytest.mark.unit
@pytest.mark.parametrize("layer", [-1, 0])
def test_aux_ctc_adds_a_finite_loss_with_gradients_to_the_encoder(tokenizer_dir, layer):
    cfg = tiny_cfg(tokenizer_dir, model={"aux_ctc": {"weight": 0.3, "layer": layer}}).model
    model = AlignerEncoderModel(cfg).train()
    audio, lens = torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000])
    tokens, tlens = torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2])
    encoded, encoded_len = model(input_signal=audio, input_signal_length=lens)
    ctc = model.aux_ctc(encoded, encoded_len, tokens, tlens)
    ctc.backward()
    assert torch.isfinite(ctc) and ctc.item() > 0
    assert model.aux_ctc.head.weight.grad is not None
    assert model.encoder.layers[0].feed_forward1.linear1.weight.grad.abs().sum() > 0


@pytest.mark.unit
def test_aux_ctc_layer_out_of_range_is_named(tokenizer_dir):
    cfg = tiny_cfg(tokenizer_dir, model={"aux_ctc": {"weight": 0.1, "layer": 7}}).model
    with pytest.raises(ValueError, match="aux_ctc.layer"):
        AlignerEncoderModel(cfg)


def aux_aligner_step(tokenizer_dir, layer: int) -> tuple[AlignerEncoderModel, dict]:
    """One training_step (outside a Trainer) of a tiny model with aux_aligner at ``layer``; what it logs."""
    from types import SimpleNamespace

    cfg = tiny_cfg(tokenizer_dir, model={"aux_aligner": {"weight": 0.5, "layer": layer}}).model
    model = AlignerEncoderModel(cfg).train()
    batch = (torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000]), torch.tensor([[1, 2, 3], [4, 5, 0]]),
             torch.tensor([3, 2]))  # fmt: skip
    logged = {}
    model._trainer = SimpleNamespace(global_step=0, log_every_n_steps=10**6)
    model._optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    model.log_dict = lambda values, **kwargs: logged.update(values)
    logged["loss"] = model.training_step(batch, 0)["loss"]
    return model, logged


@pytest.mark.unit
def test_aux_aligner_on_the_last_layer_repeats_the_main_loss(tokenizer_dir):
    """The intermediate aligner loss is the aligner loss on another layer's frames: on the last layer, the same."""
    _, logged = aux_aligner_step(tokenizer_dir, layer=1)
    assert logged["train_aux_aligner_loss"].item() == pytest.approx(logged["train_aligner_loss"].item(), rel=1e-5)
    assert logged["loss"].item() == pytest.approx(1.5 * logged["train_aligner_loss"].item(), rel=1e-5)


@pytest.mark.unit
def test_aux_aligner_on_an_inner_layer_trains_only_the_layers_below(tokenizer_dir):
    model, logged = aux_aligner_step(tokenizer_dir, layer=0)
    inner = logged["train_aux_aligner_loss"]
    assert torch.isfinite(inner) and inner.item() != pytest.approx(logged["train_aligner_loss"].item(), rel=1e-3)
    inner.backward()
    assert model.encoder.layers[0].feed_forward1.linear1.weight.grad.abs().sum() > 0
    assert model.encoder.layers[1].feed_forward1.linear1.weight.grad is None
    assert model.joint.joint_net[-1].weight.grad.abs().sum() > 0  # the joint is shared with the main loss


@pytest.mark.unit
@pytest.mark.parametrize("layer", [None, 2, -1])
def test_aux_aligner_layer_must_name_an_encoder_layer(tokenizer_dir, layer):
    cfg = tiny_cfg(tokenizer_dir, model={"aux_aligner": {"weight": 0.1, "layer": layer}}).model
    with pytest.raises(ValueError, match=r"model.aux_aligner.layer must be in \[0, 1\]"):
        AlignerEncoderModel(cfg)


@pytest.mark.unit
def test_reverse_within_length_keeps_padding_in_place():
    from nemo_aligner_plugin.augment import reverse_within_length

    audio = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 5.0, 6.0, 7.0]])
    assert reverse_within_length(audio, torch.tensor([3, 4])).tolist() == [[3.0, 2.0, 1.0, 0.0], [7.0, 6.0, 5.0, 4.0]]


@pytest.mark.unit
def test_reverse_audio_model_learns_reversed_tone_utterances(tokenizer_dir, tone_manifest):
    from conftest import manifest_batch, overfit

    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"reverse_audio": True}).model)
    batch, texts = manifest_batch(model, tone_manifest)
    overfit(model, batch, texts, max_steps=400)  # text stays left-to-right; audio arrives reversed
    # The encoder really saw reversed audio: the same weights without the flag, fed the audio reversed by hand,
    # give the same frames (a no-op reverse_audio passed the overfit above too).
    plain = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model).eval()
    plain.load_state_dict(model.state_dict())
    model.eval()
    audio, audio_lens = batch[0], batch[1]
    with torch.no_grad():
        flagged, _ = model(input_signal=audio, input_signal_length=audio_lens)
        by_hand, _ = plain(input_signal=reverse_within_length(audio, audio_lens), input_signal_length=audio_lens)
        unreversed, _ = plain(input_signal=audio, input_signal_length=audio_lens)
    torch.testing.assert_close(flagged, by_hand)
    assert not torch.allclose(flagged, unreversed, atol=1e-3)


@pytest.mark.unit
@pytest.mark.parametrize("batch_size", [4, 6, 8, 13, 16])
@pytest.mark.parametrize("max_joined", [2, 3])
def test_concat_expected_share_holds_for_any_batch_size(batch_size, max_joined):
    """Plain rounding never joined a batch of <= 6 at 15% and always joined one pair in batches of 7-16."""
    gen = torch.Generator().manual_seed(0)
    audio, lens = torch.ones(batch_size, 10), torch.full((batch_size,), 10)
    tokens, token_lens = torch.ones(batch_size, 2, dtype=torch.long), torch.full((batch_size,), 2)
    draws = 3000
    joined = 0
    for _ in range(draws):
        out = concatenate_utterances(audio, lens, tokens, token_lens, 0.15, max_joined=max_joined, generator=gen)
        joined += sum(length // 10 for length in out[1].tolist() if length > 10)  # utterances in joined rows
    share = joined / (draws * batch_size)  # utterances in joined rows per utterance
    assert share == pytest.approx(0.15, abs=0.02)
