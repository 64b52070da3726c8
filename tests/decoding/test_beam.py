"""Beam search: beam-1 == greedy, batched == unbatched, exhaustive-search reference, debiasing, N-best lists."""

import functools
import itertools
import math
from dataclasses import replace

import pytest
import torch

from conftest import random_decoder_joint
from nemo_aligner_plugin.decoding.beam import BeamConfig, beam_search, debias_log_probs
from nemo_aligner_plugin.decoding.greedy import greedy_batch

ENC_DIM, HIDDEN = 16, 20
SOFT = {"eos_bias": 0.0, "sharpen": 3.0}  # flatter logits: beams disagree, rows end both ways


def make_modules(vocab: int = 12, eos_bias: float = 3.0, sharpen: float = 20.0):
    return random_decoder_joint(vocab, ENC_DIM, HIDDEN, eos_bias=eos_bias, sharpen=sharpen)


def random_batch(batch_size: int, seed: int, frames: int = 15):
    torch.manual_seed(seed)
    encoder_out = torch.randn(batch_size, frames, ENC_DIM)
    lengths = torch.randint(3, frames + 1, (batch_size,))
    lengths[0] = frames
    return encoder_out, lengths


@pytest.mark.unit
@pytest.mark.parametrize("batch_size", [1, 7])
def test_beam_one_without_debias_is_greedy(batch_size):
    eos = 12
    decoder, joint = make_modules()
    encoder_out, lengths = random_batch(batch_size, seed=batch_size)
    greedy, greedy_state = greedy_batch(decoder, joint, encoder_out, lengths, eos)
    hyps, state = beam_search(decoder, joint, encoder_out, lengths, eos, BeamConfig(beam_size=1, debias=0.0))
    best = hyps.best()
    assert torch.equal(best.tokens, greedy.tokens) and torch.equal(best.lengths, greedy.lengths)
    # greedy's gathered input gates round differently from beam's embedding + LSTM cell: equal up to float32
    torch.testing.assert_close(best.scores, greedy.scores)
    assert torch.equal(best.ended_with_eos, greedy.ended_with_eos)
    assert hyps.num_hyps.tolist() == [1] * batch_size
    # The carried state matches too, including rows that emitted nothing (zero state, EOS = start token).
    assert torch.equal(state.last_tokens, greedy_state.last_tokens)
    for ours, theirs in zip(state.lstm, greedy_state.lstm, strict=True):
        torch.testing.assert_close(ours, theirs)
    if batch_size == 7:  # guard: both stop conditions occur
        assert greedy.ended_with_eos.any() and not greedy.ended_with_eos.all()


@pytest.mark.unit
def test_beam_one_with_debias_keeps_greedy_tokens():
    """The argmax survives debiasing, so only the (renormalized, higher) scores change."""
    decoder, joint = make_modules()
    encoder_out, lengths = random_batch(7, seed=7)
    greedy, _ = greedy_batch(decoder, joint, encoder_out, lengths, 12)
    best = beam_search(decoder, joint, encoder_out, lengths, 12, BeamConfig(beam_size=1, debias=2.0))[0].best()
    assert torch.equal(best.tokens, greedy.tokens) and torch.equal(best.ended_with_eos, greedy.ended_with_eos)
    assert (best.scores >= greedy.scores - 1e-6).all()


@pytest.mark.unit
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_wider_beam_scores_at_least_greedy(seed):
    """Not a theorem of beam search, but it must hold on these random batches (where K=4 often finds better)."""
    decoder, joint = make_modules(**SOFT)
    encoder_out, lengths = random_batch(7, seed=seed)
    greedy, _ = greedy_batch(decoder, joint, encoder_out, lengths, 12)
    best = beam_search(decoder, joint, encoder_out, lengths, 12, BeamConfig(beam_size=4, debias=0.0))[0].best()
    assert (best.scores >= greedy.scores - 1e-5).all()
    assert (best.scores > greedy.scores + 1e-3).any()  # guard: the beam matters on this data


@pytest.mark.unit
@pytest.mark.parametrize("length_norm", [False, True])
def test_batched_beam_equals_per_utterance(length_norm):
    decoder, joint = make_modules(**SOFT)
    encoder_out, lengths = random_batch(7, seed=11)
    cfg = BeamConfig(beam_size=4, length_norm=length_norm, return_best_hypothesis=False)
    batched, _ = beam_search(decoder, joint, encoder_out, lengths, 12, cfg)
    for b in range(7):
        single, _ = beam_search(decoder, joint, encoder_out[b : b + 1, : lengths[b]], lengths[b : b + 1], 12, cfg)
        n = int(single.num_hyps[0])
        assert int(batched.num_hyps[b]) == n
        assert torch.equal(batched.lengths[b, :n], single.lengths[0, :n])
        assert torch.equal(batched.ended_with_eos[b, :n], single.ended_with_eos[0, :n])
        u = int(single.lengths[0, :n].max())
        assert torch.equal(batched.tokens[b, :n, :u], single.tokens[0, :n, :u])
        torch.testing.assert_close(batched.scores[b, :n], single.scores[0, :n])


@torch.no_grad()
def exhaustive_reference(decoder, joint, encoder_out, length, eos, debias):
    """Every complete hypothesis of one utterance with its score, by brute force over all token sequences.

    Recomputes the prediction net over the whole prefix (no state carried) and debiases by hand.
    """
    vocab1 = eos + 1

    @functools.cache
    def step_log_probs(prefix: tuple[int, ...]) -> list[float]:
        tokens = torch.tensor([prefix], dtype=torch.long).reshape(1, len(prefix))
        pred_out, _ = decoder.predict(tokens, state=None, add_sos=True, batch_size=1)
        enc = joint.project_encoder(encoder_out[len(prefix)])
        probs = torch.softmax(joint.joint_net(enc + joint.project_prednet(pred_out[0, -1])).double(), dim=-1).tolist()
        best = max(range(vocab1), key=probs.__getitem__)
        keep = [p >= debias / vocab1 or i == best for i, p in enumerate(probs)]
        total = sum(p for p, k in zip(probs, keep, strict=True) if k)
        return [math.log(p / total) if k else -math.inf for p, k in zip(probs, keep, strict=True)]

    results = []  # (tokens, score, ended_with_eos)
    for n in range(length + 1):
        for seq in itertools.product(range(eos), repeat=n):
            with_eos = n < length
            targets = list(seq) + ([eos] if with_eos else [])
            score = sum(step_log_probs(seq[:i])[t] for i, t in enumerate(targets))
            if score > -math.inf:
                results.append((list(seq), score, with_eos))
    return results


@pytest.mark.unit
@pytest.mark.parametrize("debias, length_norm", [(0.0, False), (0.0, True), (1.0, False), (1.0, True)])
def test_beam_wide_enough_finds_every_hypothesis_of_exhaustive_search(debias, length_norm):
    """V=3 + EOS, T<=4: K = V1**T keeps every prefix, so the N-best list is the exhaustive list, sorted."""
    vocab, eos, frames = 3, 3, 4
    decoder, joint = make_modules(vocab=vocab, eos_bias=0.5, sharpen=2.0)
    torch.manual_seed(5)
    encoder_out = torch.randn(4, frames, ENC_DIM)
    lengths = torch.tensor([4, 1, 3, 2])
    cfg = BeamConfig(beam_size=(vocab + 1) ** frames, debias=debias, length_norm=length_norm)
    nbest, _ = beam_search(decoder, joint, encoder_out, lengths, eos, replace(cfg, return_best_hypothesis=False))
    best, _ = beam_search(decoder, joint, encoder_out, lengths, eos, cfg)
    for b in range(4):
        ref = exhaustive_reference(decoder, joint, encoder_out[b], int(lengths[b]), eos, debias)
        key = (lambda r: r[1] / (len(r[0]) + r[2])) if length_norm else (lambda r: r[1])
        ref.sort(key=key, reverse=True)
        n = int(nbest.num_hyps[b])
        assert n == len(ref)
        got = [nbest.tokens[b, i, : nbest.lengths[b, i]].tolist() for i in range(n)]
        assert got == [r[0] for r in ref]
        assert nbest.ended_with_eos[b, :n].tolist() == [r[2] for r in ref]
        torch.testing.assert_close(
            nbest.scores[b, :n].double(), torch.tensor([r[1] for r in ref], dtype=torch.float64), atol=1e-4, rtol=0
        )
        assert best.best().tokens[b, : best.lengths[b, 0]].tolist() == ref[0][0]  # early stopping keeps the best


@pytest.mark.unit
def test_debias_drops_tokens_below_threshold_and_renormalizes():
    log_probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]]).log()
    torch.testing.assert_close(
        debias_log_probs(log_probs, 1.0).exp(), torch.tensor([[0.625, 0.375, 0, 0], [0, 0, 3 / 7, 4 / 7]])
    )
    assert torch.equal(debias_log_probs(log_probs, 0.0), log_probs)
    only_argmax = debias_log_probs(log_probs, 4.0)  # threshold 1.0: nothing passes, the argmax is kept
    assert torch.equal(only_argmax.exp(), torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))


@pytest.mark.unit
@pytest.mark.parametrize("length_norm", [False, True])
def test_nbest_lists_are_sorted_bounded_and_start_with_the_best(length_norm):
    decoder, joint = make_modules(**SOFT)
    encoder_out, lengths = random_batch(7, seed=3)
    cfg = BeamConfig(beam_size=4, length_norm=length_norm, return_best_hypothesis=False)
    nbest, _ = beam_search(decoder, joint, encoder_out, lengths, 12, cfg)
    best, _ = beam_search(decoder, joint, encoder_out, lengths, 12, BeamConfig(beam_size=4, length_norm=length_norm))
    assert nbest.scores.shape[1] == 4 and ((nbest.num_hyps >= 1) & (nbest.num_hyps <= 4)).all()
    rank = nbest.scores / (nbest.lengths + nbest.ended_with_eos) if length_norm else nbest.scores
    for b in range(7):
        n = int(nbest.num_hyps[b])
        assert (rank[b, : n - 1] >= rank[b, 1:n]).all()
        assert (nbest.lengths[b, :n] <= lengths[b]).all()
        assert torch.isinf(nbest.scores[b, n:]).all()
    assert torch.equal(nbest.best().tokens, best.best().tokens)


@pytest.mark.unit
def test_frames_and_max_tokens_bound_every_hypothesis():
    decoder, joint = make_modules(eos_bias=-100.0)  # EOS never survives: hypotheses end when frames run out
    encoder_out = torch.randn(3, 10, ENC_DIM)
    cfg = BeamConfig(beam_size=3, return_best_hypothesis=False)
    hyps, _ = beam_search(decoder, joint, encoder_out, torch.tensor([10, 4, 1]), 12, cfg)
    assert hyps.lengths[:, 0].tolist() == [10, 4, 1] and not hyps.ended_with_eos.any()
    capped, _ = beam_search(decoder, joint, encoder_out, torch.tensor([10, 4, 1]), 12, BeamConfig(max_tokens=3))
    assert capped.lengths[:, 0].tolist() == [3, 3, 1]


@pytest.mark.unit
def test_utterance_without_frames_gets_one_empty_hypothesis_like_greedy():
    decoder, joint = make_modules()
    encoder_out, lengths = torch.randn(2, 6, ENC_DIM), torch.tensor([6, 0])
    greedy, _ = greedy_batch(decoder, joint, encoder_out, lengths, 12)
    hyps, _ = beam_search(decoder, joint, encoder_out, lengths, 12, BeamConfig(beam_size=3, debias=0.0))
    assert hyps.num_hyps[1] == 1 and hyps.lengths[1, 0] == 0 and hyps.scores[1, 0] == 0.0
    assert hyps.best().scores[1] == greedy.scores[1] and not hyps.ended_with_eos[1, 0]
    none, _ = beam_search(decoder, joint, encoder_out, torch.tensor([0, 0]), 12)
    assert none.num_hyps.tolist() == [1, 1] and none.tokens.shape == (2, 6, 0)


@pytest.mark.unit
def test_bad_beam_config_is_refused():
    with pytest.raises(ValueError, match="beam_size"):
        BeamConfig(beam_size=0)
    with pytest.raises(ValueError, match="debias"):
        BeamConfig(debias=-1.0)
