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


def _tiny_transducer(layers: int, vocab: int):
    from nemo.collections.asr.modules import RNNTDecoder, RNNTJoint

    decoder = RNNTDecoder(prednet={"pred_hidden": 16, "pred_rnn_layers": layers}, vocab_size=vocab, blank_as_pad=True)
    joint = RNNTJoint(
        jointnet={"encoder_hidden": 8, "pred_hidden": 16, "joint_hidden": 12, "activation": "relu"}, num_classes=vocab
    )
    with torch.no_grad():
        joint.joint_net[-1].bias[vocab] += 2.5  # EOS often enough that rows stop at different steps
    # float64: the two loops compute the same function in another order; float32 near-ties could flip an argmax
    return decoder.double().eval(), joint.double().eval()


@pytest.mark.unit
@pytest.mark.parametrize("layers", [1, 2])
def test_gate_table_loop_equals_stepwise_loop(layers: int) -> None:
    """greedy_batch's fast path (plain LSTM, eval) == the generic loop: tokens, scores, stop reasons, carried state."""
    from nemo_aligner_plugin.decoding import greedy

    torch.manual_seed(layers)
    vocab = 20
    decoder, joint = _tiny_transducer(layers, vocab)
    lstm = greedy.plain_lstm(decoder)
    assert lstm is not None
    stops = set()
    for trial in range(30):
        batch, frames = int(torch.randint(1, 6, ())), int(torch.randint(0, 12, ()))
        enc = torch.randn(batch, frames, 8, dtype=torch.float64) * 2
        lens = torch.randint(0, frames + 1, (batch,))
        cfg = GreedyBatchConfig(max_tokens=int(torch.randint(1, 8, ())) if trial % 3 == 0 else None)
        with torch.no_grad():
            ref, ref_state = greedy._greedy_stepwise(decoder, joint, enc, lens, vocab, cfg, None)
            new, new_state = greedy._greedy_gate_table(lstm, decoder, joint, enc, lens, vocab, cfg, None)
            ref2, ref_state2 = greedy._greedy_stepwise(decoder, joint, enc, lens, vocab, cfg, ref_state)
            new2, new_state2 = greedy._greedy_gate_table(lstm, decoder, joint, enc, lens, vocab, cfg, new_state)
        for a, b in ((ref, new), (ref2, new2)):
            assert torch.equal(a.tokens, b.tokens)
            assert torch.equal(a.lengths, b.lengths)
            assert torch.equal(a.frames, b.frames)
            assert torch.equal(a.ended_with_eos, b.ended_with_eos)
            torch.testing.assert_close(a.scores, b.scores)
            stops.update(a.ended_with_eos.tolist())
        for a, b in ((ref_state, new_state), (ref_state2, new_state2)):
            assert torch.equal(a.last_tokens, b.last_tokens)
            for x, y in zip(a.lstm, b.lstm, strict=True):
                torch.testing.assert_close(x, y)
    assert stops == {True, False}  # both stop reasons (EOS, out of frames) were exercised


@pytest.mark.unit
def test_gate_table_follows_weight_updates() -> None:
    """The cached (V1, 4H) table is rebuilt after an in-place weight change (an optimizer step)."""
    from nemo_aligner_plugin.decoding.prediction import input_gate_table

    decoder, _ = _tiny_transducer(1, 5)
    lstm = decoder.prediction["dec_rnn"].lstm
    embed = decoder.prediction["embed"]
    before = input_gate_table(embed, lstm).clone()
    assert input_gate_table(embed, lstm) is input_gate_table(embed, lstm)  # cached
    with torch.no_grad():
        lstm.weight_ih_l0.mul_(2.0)
    after = input_gate_table(embed, lstm)
    expected = embed.weight @ lstm.weight_ih_l0.t() + lstm.bias_ih_l0 + lstm.bias_hh_l0
    torch.testing.assert_close(after, expected)
    assert not torch.allclose(after, before)
