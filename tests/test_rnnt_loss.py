"""The vectorized RNN-T loss (baseline training on CPU) against NeMo's own RNN-T losses."""

import pytest
import torch
from nemo.collections.asr.losses.rnnt import RNNTLoss

from nemo_aligner_plugin.demo.rnnt_loss import VectorizedRNNTLoss, rnnt_loss_vectorized, use_vectorized_loss


def _batch(seed: int, batch=5, frames=9, tokens=6, vocab=7):
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randn(batch, frames, tokens + 1, vocab, generator=gen)
    labels = torch.randint(0, vocab - 1, (batch, tokens), generator=gen)
    act_lens = torch.randint(tokens // 2, frames + 1, (batch,), generator=gen)
    act_lens[0] = frames
    label_lens = torch.randint(0, tokens + 1, (batch,), generator=gen)
    label_lens[1] = tokens
    return acts, labels, act_lens, label_lens


@pytest.mark.unit
@pytest.mark.parametrize("loss_name", ["pytorch", "warprnnt_numba"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_nemo_losses_values_and_gradients(loss_name, seed):
    acts, labels, act_lens, label_lens = _batch(seed)
    blank = acts.size(-1) - 1
    reference = RNNTLoss(num_classes=blank, loss_name=loss_name, reduction=None)
    ours = RNNTLoss(num_classes=blank, loss_name=loss_name, reduction=None)
    use_vectorized_loss(ours)
    assert isinstance(ours._loss, VectorizedRNNTLoss)
    # NeMo's CPU losses take log-probs (its joint normalizes on CPU); ours normalizes itself, which is idempotent
    x_ref = acts.log_softmax(-1).requires_grad_(True)
    x_ours = acts.log_softmax(-1).requires_grad_(True)
    want = reference(log_probs=x_ref, targets=labels, input_lengths=act_lens, target_lengths=label_lens)
    got = ours(log_probs=x_ours, targets=labels, input_lengths=act_lens, target_lengths=label_lens)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    weights = torch.arange(1.0, 6.0)  # a non-uniform upstream gradient, so per-utterance gradients are checked
    (want * weights).sum().backward()
    (got * weights).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-3, atol=1e-5)


@pytest.mark.unit
def test_single_path_lattice_is_exact():
    """T=1, U=1: the only path emits the token then blank at frame 0."""
    acts = torch.randn(1, 1, 2, 3)
    logp = acts.log_softmax(-1)
    labels = torch.tensor([[1]])
    got = rnnt_loss_vectorized(acts, labels, torch.tensor([1]), torch.tensor([1]), blank=2)
    torch.testing.assert_close(got, -(logp[0, 0, 0, 1] + logp[0, 0, 1, 2]).unsqueeze(0))
