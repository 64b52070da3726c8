"""The chunk x label lattice and ChunkwiseLoss against brute-force enumeration of every split on tiny sizes."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from nemo.collections.asr.modules import RNNTJoint

from nemo_aligner_plugin.chunkwise.lattice import chunk_slot_counts, chunkwise_log_likelihood
from nemo_aligner_plugin.chunkwise.loss import ChunkwiseLoss, lattice_log_probs, lattice_points
from nemo_aligner_plugin.modules.joint import diagonal_logits

NEG_INF = float("-inf")


def splits(chunk_slots: list[int], num_labels: int):
    """Every (k_0, ..., k_{N-1}) with 0 <= k_c <= S_c and sum k_c = U."""
    for ks in itertools.product(*(range(s + 1) for s in chunk_slots)):
        if sum(ks) == num_labels:
            yield ks


def split_terms(ks, chunk_slots):
    """((c, j, u) label points, (c, k, u) EOC points) that one split reads."""
    labels, eocs, state = [], [], 0
    for c, (k, slots) in enumerate(zip(ks, chunk_slots, strict=True)):
        labels += [(c, j, state + j) for j in range(k)]
        if k < slots:
            eocs.append((c, k, state + k))
        state += k
    return labels, eocs


def brute_force(label_logp, eoc_logp, target_lengths, chunk_slots):
    """(B,) log-sum over every split, one Python term per split (autograd through plain indexing)."""
    out = []
    for b in range(label_logp.size(0)):
        slots = chunk_slots[b].tolist()
        terms = []
        for ks in splits(slots, int(target_lengths[b])):
            labels, eocs = split_terms(ks, slots)
            term = label_logp.new_zeros(())
            for c, j, u in labels:
                term = term + label_logp[b, c, j, u]
            for c, k, u in eocs:
                term = term + eoc_logp[b, c, k, u]
            terms.append(term)
        out.append(torch.logsumexp(torch.stack(terms), 0) if terms else label_logp.new_tensor(NEG_INF))
    return torch.stack(out)


def random_case(seed, chunks, chunk_size, max_labels, encoder_lengths, target_lengths):
    """Random (B, N, K, U+1) log-probs (float64, requires grad) and the slots of the given lengths."""
    gen = torch.Generator().manual_seed(seed)
    states = max(target_lengths) + 1
    shape = (len(encoder_lengths), chunks, max_labels, states)
    label_logp = (-torch.rand(shape, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    eoc_logp = (-torch.rand(shape, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    slots = chunk_slot_counts(torch.tensor(encoder_lengths), chunks, chunk_size, max_labels)
    return label_logp, eoc_logp, torch.tensor(target_lengths), slots


CASES = [  # (chunks, chunk_size, max_labels, encoder lengths, target lengths): B = 3, padded, partial last chunks
    (3, 3, 3, [9, 7, 4], [4, 3, 2]),
    (3, 3, 2, [8, 9, 5], [4, 1, 3]),  # K < C
    (2, 3, 3, [6, 5, 2], [3, 4, 0]),  # U_b = 0
    (3, 2, 1, [6, 5, 3], [3, 2, 2]),  # one slot per chunk
    (1, 3, 3, [3, 2, 1], [2, 2, 1]),  # a single chunk
    (3, 3, 2, [9, 9, 9], [0, 2, 4]),
]


@pytest.mark.unit
@pytest.mark.parametrize("case", CASES)
def test_lattice_matches_brute_force_values_and_gradients(case):
    label_logp, eoc_logp, target_lengths, slots = random_case(0, *case)
    got = chunkwise_log_likelihood(label_logp, eoc_logp, target_lengths, slots)
    want = brute_force(label_logp, eoc_logp, target_lengths, slots)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    weights = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)  # distinct per row, so rows cannot mix
    got_grads = torch.autograd.grad((got * weights).sum(), (label_logp, eoc_logp))
    want_grads = torch.autograd.grad((want * weights).sum(), (label_logp, eoc_logp))
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


@pytest.mark.unit
def test_lattice_points_hold_every_point_a_split_reads():
    for chunks, chunk_size, max_labels, enc_lens, tgt_lens in CASES:
        _, _, target_lengths, slots = random_case(0, chunks, chunk_size, max_labels, enc_lens, tgt_lens)
        states = max(tgt_lens) + 1
        for lengths in (target_lengths, None):
            needed = lattice_points(slots, lengths, max_labels, states)
            assert needed.shape == (3, chunks, max_labels, states)
            for b in range(3):
                read = set()
                for ks in splits(slots[b].tolist(), tgt_lens[b]):
                    labels, eocs = split_terms(ks, slots[b].tolist())
                    read |= set(labels) | set(eocs)
                marked = {tuple(p) for p in needed[b].nonzero().tolist()}
                assert read <= marked
                if lengths is not None:  # the intervals are tight: every marked point is read by some split
                    assert marked == read


@pytest.mark.unit
def test_infeasible_utterance_is_minus_inf_and_the_loss_skips_it():
    # row 1: 5 labels, but 2 chunks x 2 slots (K=2 < C=3) = 4 slots
    label_logp, eoc_logp, target_lengths, slots = random_case(1, 2, 3, 2, [6, 6, 6], [4, 5, 0])
    ll = chunkwise_log_likelihood(label_logp, eoc_logp, target_lengths, slots)
    assert ll[1] == NEG_INF and torch.isfinite(ll[[0, 2]]).all()
    loss = ChunkwiseLoss(eoc_id=7, chunk_size=3, max_labels_per_chunk=2, reduction="sum")
    value = loss(
        label_logp=label_logp, eoc_logp=eoc_logp, target_lengths=target_lengths, encoder_lengths=torch.tensor([6, 6, 6])
    )
    assert loss.num_skipped_last == 1
    torch.testing.assert_close(value, -(ll[0] + ll[2]))
    grads = torch.autograd.grad(value, (label_logp, eoc_logp))
    assert all(torch.isfinite(g).all() and (g[1] == 0).all() for g in grads)


@pytest.mark.unit
def test_padding_garbage_gets_no_gradient_and_changes_nothing():
    case = (3, 3, 2, [8, 9, 4], [4, 1, 2])
    label_logp, eoc_logp, target_lengths, slots = random_case(2, *case)
    states = label_logp.size(-1)
    in_chunk = (torch.arange(2) < slots.unsqueeze(-1)).unsqueeze(-1)  # (B, N, K, 1)
    u = torch.arange(states)
    label_pad = ~(in_chunk & (u < target_lengths.view(-1, 1, 1, 1)))
    eoc_pad = ~(in_chunk & (u <= target_lengths.view(-1, 1, 1, 1)))
    assert label_pad.any() and eoc_pad.any()
    clean = chunkwise_log_likelihood(label_logp, eoc_logp, target_lengths, slots)
    garbage = torch.tensor([float("nan"), float("inf"), NEG_INF, 1e30], dtype=torch.float64)
    noisy_label = torch.where(label_pad, garbage[torch.arange(label_pad.numel()) % 4].view_as(label_pad), label_logp)
    noisy_eoc = torch.where(eoc_pad, garbage[torch.arange(eoc_pad.numel()) % 4].view_as(eoc_pad), eoc_logp)
    noisy_label, noisy_eoc = noisy_label.detach().requires_grad_(True), noisy_eoc.detach().requires_grad_(True)
    noisy = chunkwise_log_likelihood(noisy_label, noisy_eoc, target_lengths, slots)
    torch.testing.assert_close(noisy, clean, rtol=0, atol=0)
    grads = torch.autograd.grad(noisy.sum(), (noisy_label, noisy_eoc))
    clean_grads = torch.autograd.grad(clean.sum(), (label_logp, eoc_logp))
    for grad, clean_grad, pad in zip(grads, clean_grads, (label_pad, eoc_pad), strict=True):
        assert (grad[pad] == 0).all()
        torch.testing.assert_close(grad, clean_grad, rtol=0, atol=0)


@pytest.mark.unit
def test_empty_targets_sum_the_eoc_at_slot_zero_of_each_chunk():
    label_logp, eoc_logp, _, slots = random_case(3, 3, 3, 2, [7, 3, 1], [0, 0, 0])
    ll = chunkwise_log_likelihood(label_logp, eoc_logp, torch.zeros(3, dtype=torch.long), slots)
    chunks_of = [3, 1, 1]  # ceil(T_b / 3)
    want = [sum(eoc_logp[b, c, 0, 0] for c in range(n)) for b, n in enumerate(chunks_of)]
    torch.testing.assert_close(ll, torch.stack(want), rtol=0, atol=1e-12)


@pytest.mark.unit
def test_reductions():
    label_logp, eoc_logp, target_lengths, slots = random_case(4, 3, 3, 2, [8, 9, 4], [4, 1, 5])
    encoder_lengths = torch.tensor([8, 9, 4])  # row 2: 5 labels > 2 + 1 slots, skipped
    nll = -chunkwise_log_likelihood(label_logp, eoc_logp, target_lengths, slots)[:2].sum()
    values = {}
    for reduction in ("sum", "mean_utterance", "mean_token"):
        loss = ChunkwiseLoss(eoc_id=5, chunk_size=3, max_labels_per_chunk=2, reduction=reduction)
        values[reduction] = loss(
            label_logp=label_logp, eoc_logp=eoc_logp, target_lengths=target_lengths, encoder_lengths=encoder_lengths
        )
        assert loss.num_skipped_last == 1
    torch.testing.assert_close(values["sum"], nll)
    torch.testing.assert_close(values["mean_utterance"], nll / 2)
    torch.testing.assert_close(values["mean_token"], nll / ((4 + 3) + (1 + 3)))  # U_b + chunks_b of the kept rows


@pytest.mark.unit
def test_loss_rejects_bad_settings():
    with pytest.raises(ValueError, match="max_labels_per_chunk"):
        ChunkwiseLoss(eoc_id=3, chunk_size=2, max_labels_per_chunk=3)
    with pytest.raises(ValueError, match="reduction"):
        ChunkwiseLoss(eoc_id=3, chunk_size=2, reduction="mean")
    loss = ChunkwiseLoss(eoc_id=3, chunk_size=2)
    logp = torch.zeros(1, 2, 2, 3)
    with pytest.raises(ValueError, match="cannot hold 5"):
        loss(label_logp=logp, eoc_logp=logp, target_lengths=torch.tensor([1]), encoder_lengths=torch.tensor([5]))


def tiny_joint(seed: int = 0, vocab: int = 5) -> RNNTJoint:
    torch.manual_seed(seed)
    jointnet = {"encoder_hidden": 6, "pred_hidden": 4, "joint_hidden": 8, "activation": "relu", "dropout": 0.0}
    return RNNTJoint(jointnet=jointnet, num_classes=vocab, log_softmax=None).eval()


def joint_case(seed: int = 0):
    """Encoder output (B=3, T=7, D=6), pred out (B, U+1=4, H=4), targets with -1 padding, lengths."""
    gen = torch.Generator().manual_seed(seed)
    encoder_out = torch.randn(3, 7, 6, generator=gen, requires_grad=True)
    pred_out = torch.randn(3, 4, 4, generator=gen, requires_grad=True)
    targets = torch.tensor([[1, 4, 0], [2, -1, -1], [3, 3, -1]])
    return encoder_out, pred_out, targets, torch.tensor([7, 5, 3]), torch.tensor([3, 1, 2])


@pytest.mark.unit
def test_lattice_log_probs_match_per_point_diagonal_logits():
    joint = tiny_joint()
    encoder_out, pred_out, targets, _, _ = joint_case()
    chunk_size, max_labels, eoc = 3, 2, 5
    got = lattice_log_probs(joint, encoder_out, pred_out, targets, chunk_size, max_labels, eoc, prune=False)
    assert got.label_logp.shape == (3, 3, 2, 4) and got.chunk_slots.tolist() == [[2, 2, 1]] * 3
    padded = torch.nn.functional.pad(encoder_out, (0, 0, 0, 2))
    for c, j in itertools.product(range(3), range(max_labels)):
        frame = padded[:, c * chunk_size + j : c * chunk_size + j + 1].expand(3, 4, 6)  # the frame at every u
        logp = diagonal_logits(joint, frame, pred_out).log_softmax(-1)  # (B, U+1, V1)
        labels = torch.cat([targets, torch.zeros(3, 1, dtype=torch.long)], 1).clamp(min=0)
        torch.testing.assert_close(got.label_logp[:, c, j], logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1))
        torch.testing.assert_close(got.eoc_logp[:, c, j], logp[..., eoc])


@pytest.mark.unit
@pytest.mark.parametrize("group_points", [None, 5])
def test_label_smoothing_mixes_the_prior_into_label_arcs_only(group_points):
    joint = tiny_joint()
    encoder_out, pred_out, targets, encoder_lengths, target_lengths = joint_case()
    exact = lattice_log_probs(joint, encoder_out, pred_out, targets, 3, 2, 5, prune=False)
    loss = ChunkwiseLoss(eoc_id=5, chunk_size=3, max_labels_per_chunk=2, label_smoothing=0.2)
    smoothing = loss.smoothing(targets, target_lengths, num_classes=6)
    prior = torch.tensor([1, 1, 1, 2, 1, 0]) / 6  # valid targets 1 4 0 | 2 | 3 3
    torch.testing.assert_close(smoothing, 0.2 * prior)
    got = lattice_log_probs(
        joint, encoder_out, pred_out, targets, 3, 2, 5, prune=False, group_points=group_points, smoothing=smoothing
    )
    torch.testing.assert_close(got.eoc_logp, exact.eoc_logp)
    padded = torch.nn.functional.pad(encoder_out, (0, 0, 0, 2))
    frame = padded[:, 4:5].expand(3, 4, 6)  # chunk 1, slot 1
    logp = diagonal_logits(joint, frame, pred_out).log_softmax(-1)
    expected = 0.8 * exact.label_logp[:, 1, 1] + (logp * 0.2 * prior).sum(-1)
    torch.testing.assert_close(got.label_logp[:, 1, 1], expected)
    value = loss(
        label_logp=got.label_logp, eoc_logp=got.eoc_logp, target_lengths=target_lengths, encoder_lengths=encoder_lengths
    )
    value.backward()
    assert torch.isfinite(encoder_out.grad).all()
    assert ChunkwiseLoss(eoc_id=5, chunk_size=3).smoothing(targets, target_lengths, 6) is None


@pytest.mark.unit
@pytest.mark.parametrize(
    "options", [{"prune": True}, {"prune": True, "group_points": 7}, {"prune": False, "group_points": 5}]
)
def test_pruned_and_grouped_lattice_give_the_same_loss_and_gradients(options):
    joint = tiny_joint(1)
    encoder_out, pred_out, targets, encoder_lengths, target_lengths = joint_case(1)
    loss = ChunkwiseLoss(eoc_id=5, chunk_size=3, max_labels_per_chunk=2)
    params = [encoder_out, pred_out, *joint.parameters()]

    def run(**kwargs):
        lp = lattice_log_probs(
            joint,
            encoder_out,
            pred_out,
            targets,
            3,
            2,
            5,
            encoder_lengths=encoder_lengths,
            target_lengths=target_lengths,
            **kwargs,
        )
        assert lp.chunk_slots.tolist() == [[2, 2, 1], [2, 2, 0], [2, 0, 0]]
        value = loss(
            label_logp=lp.label_logp,
            eoc_logp=lp.eoc_logp,
            target_lengths=target_lengths,
            encoder_lengths=encoder_lengths,
        )
        return value, torch.autograd.grad(value, params)

    want, want_grads = run(prune=False)
    got, got_grads = run(**options)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w)


@pytest.mark.unit
def test_free_logits_learn_the_targets():
    """Adam on a free (B, N, K, U+1, V1) logit tensor drives the likelihood of the targets towards 1."""
    torch.manual_seed(0)
    target_lengths, encoder_lengths = torch.tensor([3, 1, 2]), torch.tensor([6, 4, 3])
    targets = torch.tensor([[0, 2, 1], [1, 0, 0], [2, 2, 0]])
    logits = torch.randn(3, 2, 2, 4, 4, requires_grad=True)  # chunks of C=3 frames, K=2, vocabulary 3 + EOC
    loss = ChunkwiseLoss(eoc_id=3, chunk_size=3, max_labels_per_chunk=2, reduction="sum")
    labels = torch.cat([targets, torch.zeros(3, 1, dtype=torch.long)], 1).view(3, 1, 1, 4, 1).expand(3, 2, 2, 4, 1)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    first = None
    for _ in range(300):
        logp = logits.log_softmax(-1)
        value = loss(
            label_logp=logp.gather(-1, labels).squeeze(-1),
            eoc_logp=logp[..., 3],
            target_lengths=target_lengths,
            encoder_lengths=encoder_lengths,
        )
        first = float(value) if first is None else first
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert first > 1.0 and math.exp(-float(value)) > 0.95
