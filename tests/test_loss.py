"""AlignerLoss against hand-computed values."""

import math
from unittest import mock

import pytest
import torch
from nemo.utils import logging

from nemo_aligner_plugin.loss import AlignerLoss, SkippedUtterances, append_eos

EOS = 3  # vocabulary {0, 1, 2} + EOS


def reference_loss(logits, targets_eos, lengths, smoothing, alpha):
    """Plain loops: mean over valid positions of (1-a)*NLL(target) + a*sum_v q_v NLL(v)."""
    total, count = 0.0, 0
    for b in range(logits.shape[0]):
        for i in range(lengths[b] + 1):
            logp = torch.log_softmax(logits[b, i].double(), -1)
            nll = -logp[targets_eos[b][i]].item()
            smooth = -sum(smoothing[v] * logp[v].item() for v in range(len(smoothing)))
            total += (1 - alpha) * nll + alpha * smooth
            count += 1
    return total / count


@pytest.fixture
def batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4)
    targets = torch.tensor([[0, 2], [1, 0]])  # second row: one token, then padding (0 is a real id)
    target_lengths = torch.tensor([2, 1])
    encoder_lengths = torch.tensor([5, 5])
    return logits, targets, target_lengths, encoder_lengths


@pytest.mark.unit
def test_append_eos_writes_eos_at_each_length():
    out = append_eos(torch.tensor([[5, 6, 7], [8, 0, 0]]), torch.tensor([3, 1]), eos_id=9)
    assert out.tolist() == [[5, 6, 7, 9], [8, 9, 0, 0]]


@pytest.mark.unit
def test_uniform_logits_give_log_num_classes_for_any_smoothing(batch):
    _, targets, target_lengths, encoder_lengths = batch
    for mode in ("batch_prior", "uniform"):
        loss = AlignerLoss(eos_id=EOS, label_smoothing=0.1, smoothing_mode=mode)
        value = loss(
            logits=torch.zeros(2, 3, 4), targets=targets, target_lengths=target_lengths, encoder_lengths=encoder_lengths
        )
        assert value.item() == pytest.approx(math.log(4), abs=1e-6)


@pytest.mark.unit
@pytest.mark.parametrize(
    "mode, include_eos, smoothing",
    [
        ("batch_prior", False, [1 / 3, 1 / 3, 1 / 3, 0.0]),  # valid tokens 0, 2, 1; EOS not counted
        ("batch_prior", True, [1 / 5, 1 / 5, 1 / 5, 2 / 5]),  # ... plus two EOS
        ("uniform", False, [0.25, 0.25, 0.25, 0.25]),
    ],
)
def test_matches_hand_reference(batch, mode, include_eos, smoothing):
    logits, targets, target_lengths, encoder_lengths = batch
    loss = AlignerLoss(eos_id=EOS, label_smoothing=0.1, smoothing_mode=mode, prior_include_eos=include_eos)
    value = loss(logits=logits, targets=targets, target_lengths=target_lengths, encoder_lengths=encoder_lengths)
    targets_eos = [[0, 2, EOS], [1, EOS]]
    expected = reference_loss(logits, targets_eos, [2, 1], smoothing, 0.1)
    assert value.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.unit
def test_no_smoothing_is_plain_cross_entropy(batch):
    logits, targets, target_lengths, encoder_lengths = batch
    value = AlignerLoss(eos_id=EOS, label_smoothing=0.0)(
        logits=logits, targets=targets, target_lengths=target_lengths, encoder_lengths=encoder_lengths
    )
    flat_logits = torch.cat([logits[0, :3], logits[1, :2]])
    flat_targets = torch.tensor([0, 2, EOS, 1, EOS])
    assert value.item() == pytest.approx(torch.nn.functional.cross_entropy(flat_logits, flat_targets).item(), rel=1e-6)


@pytest.mark.unit
def test_padding_positions_do_not_matter(batch):
    logits, targets, target_lengths, encoder_lengths = batch
    loss = AlignerLoss(eos_id=EOS)
    base = loss(logits=logits, targets=targets, target_lengths=target_lengths, encoder_lengths=encoder_lengths)
    poisoned = logits.clone().requires_grad_(True)
    with torch.no_grad():
        poisoned[1, 2] = float("nan")  # row 1 ends at position 1 (EOS)
    value = loss(logits=poisoned, targets=targets, target_lengths=target_lengths, encoder_lengths=encoder_lengths)
    value.backward()
    assert value.item() == pytest.approx(base.item(), rel=1e-6)
    assert torch.isfinite(poisoned.grad).all()


@pytest.mark.unit
def test_reductions(batch):
    logits, targets, target_lengths, encoder_lengths = batch
    kwargs = dict(logits=logits, targets=targets, target_lengths=target_lengths, encoder_lengths=encoder_lengths)
    total = AlignerLoss(eos_id=EOS, reduction="sum")(**kwargs)
    assert AlignerLoss(eos_id=EOS, reduction="mean_token")(**kwargs).item() == pytest.approx(total.item() / 5, rel=1e-6)
    assert AlignerLoss(eos_id=EOS, reduction="mean_utterance")(**kwargs).item() == pytest.approx(
        total.item() / 2, rel=1e-6
    )


@pytest.mark.unit
def test_unalignable_utterances_are_skipped_and_reported(batch):
    logits, targets, target_lengths, _ = batch
    loss = AlignerLoss(eos_id=EOS, label_smoothing=0.0)
    encoder_lengths = torch.tensor([2, 5])  # row 0 needs 2 tokens + EOS = 3 frames, has 2
    value = loss(logits=logits, targets=targets, target_lengths=target_lengths, encoder_lengths=encoder_lengths)
    only_row1 = torch.nn.functional.cross_entropy(logits[1, :2], torch.tensor([1, EOS]))
    assert value.item() == pytest.approx(only_row1.item(), rel=1e-6)
    assert loss.num_skipped_last == 1
    loss(logits=logits, targets=targets, target_lengths=target_lengths, encoder_lengths=torch.tensor([5, 5]))
    assert loss.num_skipped_last == 0


@pytest.mark.unit
def test_skip_counters_count_apart_and_only_training_warns():
    train, val = SkippedUtterances("training"), SkippedUtterances("validation", warn=False)
    with mock.patch.object(logging, "warning") as warn:
        train.note(1, 2)
        train.note(1, 2)
        val.note(3, 4)
    assert (train.total, train.last, val.total, val.last) == (2, 1, 3, 3)
    assert warn.call_count == 1  # rate-limited: the second batch falls inside the interval; validation never warns
    assert "skipped 1 training utterance(s)" in warn.call_args[0][0]


@pytest.mark.unit
def test_all_skipped_gives_zero_finite_loss_with_gradient(batch):
    logits, targets, target_lengths, _ = batch
    logits = logits.clone().requires_grad_(True)
    value = AlignerLoss(eos_id=EOS)(
        logits=logits, targets=targets, target_lengths=target_lengths, encoder_lengths=torch.tensor([1, 1])
    )
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.unit
@pytest.mark.parametrize("kwargs", [{"smoothing_mode": "prior"}, {"reduction": "mean"}, {"label_smoothing": 1.0}])
def test_bad_options_name_the_field(kwargs):
    with pytest.raises(ValueError, match="loss\\."):
        AlignerLoss(eos_id=EOS, **kwargs)
