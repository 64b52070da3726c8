"""Batched greedy decoding equals an independent per-utterance reference."""

import pytest
import torch

from conftest import random_decoder_joint
from nemo_aligner_plugin.decoding.greedy import GreedyBatchConfig, greedy_batch

VOCAB, ENC_DIM, HIDDEN = 12, 16, 20
EOS = VOCAB


def make_modules(eos_bias: float):
    return random_decoder_joint(VOCAB, ENC_DIM, HIDDEN, eos_bias=eos_bias)


@torch.no_grad()
def reference_decode(decoder, joint, encoder_out, length):
    """One utterance, recomputing the whole prefix each step and reading the full RNN-T lattice at (i, i)."""
    tokens, score = [], 0.0
    for i in range(length):
        prefix = torch.tensor([tokens], dtype=torch.long).reshape(1, len(tokens))
        pred_out, _ = decoder.predict(prefix, state=None, add_sos=True, batch_size=1)  # (1, i+1, H)
        lattice = joint.joint_after_projection(
            joint.project_encoder(encoder_out[None, :length]), joint.project_prednet(pred_out)
        )  # (1, T, i+1, V+1), log-softmaxed on CPU
        log_probs = lattice[0, i, len(tokens)]
        best = int(log_probs.argmax())
        score += float(log_probs[best])
        if best == EOS:
            return tokens, score, True
        tokens.append(best)
    return tokens, score, False


@pytest.mark.unit
@pytest.mark.parametrize("batch_size", [1, 7])
def test_batched_greedy_equals_reference(batch_size):
    decoder, joint = make_modules(eos_bias=3.0)
    torch.manual_seed(batch_size)
    encoder_out = torch.randn(batch_size, 15, ENC_DIM)
    lengths = torch.randint(3, 16, (batch_size,))
    lengths[0] = 15
    hyps, _ = greedy_batch(decoder, joint, encoder_out, lengths, EOS)
    for b in range(batch_size):
        tokens, score, ended = reference_decode(decoder, joint, encoder_out[b], int(lengths[b]))
        assert hyps.tokens[b, : hyps.lengths[b]].tolist() == tokens
        assert hyps.scores[b].item() == pytest.approx(score, abs=1e-4)
        assert bool(hyps.ended_with_eos[b]) == ended
        assert hyps.frames[b, : hyps.lengths[b]].tolist() == list(range(len(tokens)))


@pytest.mark.unit
def test_both_stop_conditions_are_exercised():
    """Guard for the test above: with this bias, some rows hit EOS and some run out of frames."""
    decoder, joint = make_modules(eos_bias=3.0)
    torch.manual_seed(7)
    encoder_out = torch.randn(7, 15, ENC_DIM)
    lengths = torch.randint(3, 16, (7,))
    lengths[0] = 15
    hyps, _ = greedy_batch(decoder, joint, encoder_out, lengths, EOS)
    assert hyps.ended_with_eos.any() and not hyps.ended_with_eos.all()


@pytest.mark.unit
def test_rows_never_read_past_their_frames():
    decoder, joint = make_modules(eos_bias=-100.0)  # EOS never wins: rows stop only at their length
    encoder_out = torch.randn(3, 10, ENC_DIM)
    lengths = torch.tensor([10, 4, 1])
    hyps, _ = greedy_batch(decoder, joint, encoder_out, lengths, EOS)
    assert hyps.lengths.tolist() == [10, 4, 1]
    assert not hyps.ended_with_eos.any()


@pytest.mark.unit
def test_max_tokens_caps_output():
    decoder, joint = make_modules(eos_bias=-100.0)
    hyps, _ = greedy_batch(
        decoder, joint, torch.randn(2, 10, ENC_DIM), torch.tensor([10, 10]), EOS, GreedyBatchConfig(max_tokens=3)
    )
    assert hyps.lengths.tolist() == [3, 3]


@pytest.mark.unit
def test_padding_frames_do_not_change_results():
    decoder, joint = make_modules(eos_bias=3.0)
    torch.manual_seed(3)
    encoder_out = torch.randn(1, 9, ENC_DIM)
    short, _ = greedy_batch(decoder, joint, encoder_out, torch.tensor([9]), EOS)
    padded = torch.cat([encoder_out, 100 * torch.randn(1, 6, ENC_DIM)], dim=1)
    long, _ = greedy_batch(decoder, joint, padded, torch.tensor([9]), EOS)
    assert torch.equal(short.tokens, long.tokens) and torch.allclose(short.scores, long.scores)
