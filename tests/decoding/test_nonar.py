"""Non-autoregressive aligner: per-frame classifier, truncation at the first EOS, training and decoding."""

import json

import pytest
import torch

from conftest import manifest_batch, overfit, tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.decoding.nonar import NonARGreedyConfig, nonar_greedy
from nemo_aligner_plugin.modules.nonar_head import NonARHead

EOS = 3


class FixedHead(NonARHead):
    """Returns hand-written logits regardless of the input."""

    def __init__(self, logits: torch.Tensor):
        super().__init__(d_model=1, vocab_size=EOS)
        self.logits = logits

    def forward(self, encoder_out):
        return self.logits[:, : encoder_out.size(1)]


def one_hot_logits(rows: list[list[int]]) -> torch.Tensor:
    logits = torch.full((len(rows), len(rows[0]), EOS + 1), -5.0)
    for b, row in enumerate(rows):
        for t, token in enumerate(row):
            logits[b, t, token] = 5.0
    return logits


@pytest.mark.unit
def test_truncates_at_first_eos_and_at_the_encoder_length():
    rows = [[0, 1, EOS, 2, 2], [2, 2, 2, 2, 2], [EOS, 1, 1, 1, 1]]
    head = FixedHead(one_hot_logits(rows))
    hyps, state = nonar_greedy(None, head, torch.zeros(3, 5, 1), torch.tensor([5, 3, 5]), EOS)
    assert state is None
    assert hyps.lengths.tolist() == [2, 3, 0]
    assert hyps.tokens[0, :2].tolist() == [0, 1] and hyps.tokens[1, :3].tolist() == [2, 2, 2]
    assert hyps.ended_with_eos.tolist() == [True, False, True]
    log_p = torch.log_softmax(one_hot_logits(rows), -1)[0, 0, 0].item()  # every chosen entry has this log-prob
    assert hyps.scores.tolist() == pytest.approx([3 * log_p, 3 * log_p, log_p])
    capped, _ = nonar_greedy(None, head, torch.zeros(3, 5, 1), torch.tensor([5, 5, 5]), EOS, NonARGreedyConfig(2))
    assert capped.lengths.tolist() == [2, 2, 0]


@pytest.mark.unit
def test_nonar_model_trains_and_decodes_through_nemo(tokenizer_dir, tone_manifest):
    torch.manual_seed(0)
    cfg = tiny_cfg(tokenizer_dir, model={"aligner_type": "nonar"}).model
    model = AlignerEncoderModel(cfg)
    assert model.decoder is None and model.joint is None and model.cfg.decoding.strategy == "nonar_greedy"
    batch, texts = manifest_batch(model, tone_manifest)
    overfit(model, batch, texts, max_steps=400)
    files = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()]
    assert [h.text for h in model.transcribe(files, batch_size=4, verbose=False)] == texts
    with pytest.raises(ValueError, match="nonar"):
        model.change_decoding_strategy({"strategy": "beam"})


@pytest.mark.unit
def test_auxiliary_nonar_loss_on_an_autoregressive_model(tokenizer_dir, tone_manifest):
    cfg = tiny_cfg(tokenizer_dir, model={"nonar_aux": {"weight": 0.3}}).model
    model = AlignerEncoderModel(cfg).train()
    batch, _ = manifest_batch(model, tone_manifest)
    encoded, encoded_len = model(input_signal=batch[0], input_signal_length=batch[1])
    aux = model.compute_nonar_aux_loss(encoded, encoded_len, batch[2], batch[3])
    aux.backward()
    assert torch.isfinite(aux) and model.nonar_head.proj.weight.grad.abs().sum() > 0
    model.change_decoding_strategy({"strategy": "nonar_greedy"})  # the aux head can decode on its own
    assert model.decoding.decoding.decoder is None


@pytest.mark.unit
def test_nonar_greedy_needs_a_head(tokenizer_dir):
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model)
    with pytest.raises(ValueError, match="nonar_aux"):
        model.change_decoding_strategy({"strategy": "nonar_greedy"})
