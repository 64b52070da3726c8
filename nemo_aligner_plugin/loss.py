"""Frame-wise cross-entropy for Aligner-Encoders (Stooke et al., 2024, eq. 3).

B: batch size, U: max target tokens (EOS excluded), V: vocabulary size (EOS excluded).
Output position i (0..U) predicts target token i, and position ``target_lengths[b]`` predicts EOS.
"""

from __future__ import annotations

import torch
from nemo.core.classes import Loss, typecheck
from nemo.core.neural_types import LabelsType, LengthsType, LogitsType, LossType, NeuralType

from nemo_aligner_plugin.ratelimit import RateLimitedWarning

__all__ = ["AlignerLoss", "SkippedUtterances", "append_eos", "fits_encoder", "smoothing_distribution"]

SMOOTHING_MODES = ("batch_prior", "uniform")
REDUCTIONS = ("mean_token", "mean_utterance", "sum")


def append_eos(targets: torch.Tensor, target_lengths: torch.Tensor, eos_id: int) -> torch.Tensor:
    """(B, U) padded targets -> (B, U+1) with EOS written at each row's length.

    Positions after EOS keep the original padding value; they are masked by length, never read.
    """
    out = torch.cat([targets, targets.new_zeros(targets.size(0), 1)], dim=1)
    out.scatter_(1, target_lengths.long().unsqueeze(1), eos_id)
    return out


def fits_encoder(encoder_lengths: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """(B,) bool: an utterance is trainable only if its tokens + EOS fit in its encoder frames."""
    return encoder_lengths >= target_lengths + 1


def smoothing_distribution(
    targets: torch.Tensor,
    mask: torch.Tensor,
    num_classes: int,
    eos_id: int,
    mode: str = "batch_prior",
    include_eos: bool = False,
) -> torch.Tensor:
    """(V+1,) distribution that receives the label-smoothing share of the target mass: the unigram prior of the
    batch's valid targets (``mask``; EOS counted only with ``include_eos``), or uniform."""
    if mode == "uniform":
        return targets.new_full((num_classes,), 1.0 / num_classes, dtype=torch.float32)
    counted = mask & (targets != eos_id) if not include_eos else mask
    counts = torch.bincount(targets[counted], minlength=num_classes).float()
    total = counts.sum()
    if total == 0:  # e.g. every utterance is empty: fall back to uniform rather than divide by 0
        return torch.full_like(counts, 1.0 / num_classes)
    return counts / total


class AlignerLoss(Loss):
    """Label-smoothed frame-wise CE over positions 0..U with EOS last; padding masked by length.

    ``smoothing_mode='batch_prior'`` is the paper's choice: the smoothing distribution is the token
    unigram distribution counted over the current batch's valid targets; ``'uniform'`` spreads it
    evenly over all V+1 classes. Utterances whose encoder is shorter than tokens+1 cannot be aligned;
    they are dropped from the loss instead of producing NaN, and ``num_skipped_last`` says how many the last call
    dropped: the caller counts them per purpose (training, validation) with ``SkippedUtterances``.
    """

    @property
    def input_types(self):
        return {
            "logits": NeuralType(("B", "T", "D"), LogitsType()),
            "targets": NeuralType(("B", "T"), LabelsType()),
            "target_lengths": NeuralType(tuple("B"), LengthsType()),
            "encoder_lengths": NeuralType(tuple("B"), LengthsType()),
        }

    @property
    def output_types(self):
        return {"loss": NeuralType(elements_type=LossType())}

    def __init__(
        self,
        eos_id: int,
        label_smoothing: float = 0.1,
        smoothing_mode: str = "batch_prior",
        prior_include_eos: bool = False,
        reduction: str = "mean_token",
    ):
        super().__init__()
        if smoothing_mode not in SMOOTHING_MODES:
            raise ValueError(f"loss.smoothing_mode must be one of {SMOOTHING_MODES}, got {smoothing_mode!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"loss.reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"loss.label_smoothing must be in [0, 1), got {label_smoothing}")
        self.eos_id = eos_id
        self.label_smoothing = float(label_smoothing)
        self.smoothing_mode = smoothing_mode
        self.prior_include_eos = prior_include_eos
        self.reduction = reduction
        self.num_skipped_last = 0  # utterances the last call left out (tokens + EOS longer than the encoder output)

    def _smoothing_distribution(self, targets_eos: torch.Tensor, mask: torch.Tensor, num_classes: int) -> torch.Tensor:
        return smoothing_distribution(
            targets_eos, mask, num_classes, self.eos_id, self.smoothing_mode, self.prior_include_eos
        )

    @typecheck()
    def forward(self, logits, targets, target_lengths, encoder_lengths):
        """logits: (B, U+1, V+1) unnormalized; targets: (B, U); lengths: (B,)."""
        positions, num_classes = logits.shape[1:]
        target_lengths = target_lengths.long()
        targets_eos = append_eos(targets.long(), target_lengths, self.eos_id)[:, :positions]
        valid_utt = fits_encoder(encoder_lengths.long(), target_lengths)
        self.num_skipped_last = int((~valid_utt).sum())

        steps = torch.arange(positions, device=logits.device)
        mask = (steps.unsqueeze(0) <= target_lengths.unsqueeze(1)) & valid_utt.unsqueeze(1)  # (B, U+1)

        # Zero masked logits before normalizing so that garbage there (even NaN) gets no gradient.
        log_probs = torch.log_softmax(logits.float().masked_fill(~mask.unsqueeze(-1), 0.0), dim=-1)
        nll = -log_probs.gather(-1, targets_eos.unsqueeze(-1)).squeeze(-1)  # (B, U+1)
        per_position = nll
        if self.label_smoothing > 0:
            smoothing = self._smoothing_distribution(targets_eos, mask, num_classes)
            smooth_nll = -(log_probs * smoothing).sum(-1)
            per_position = (1.0 - self.label_smoothing) * nll + self.label_smoothing * smooth_nll
        per_position = per_position.masked_fill(~mask, 0.0)

        total = per_position.sum()
        if self.reduction == "sum":
            return total
        if self.reduction == "mean_utterance":
            return total / valid_utt.sum().clamp(min=1)
        return total / mask.sum().clamp(min=1)


class SkippedUtterances:
    """Counts the utterances a loss left out for one purpose, and warns at most once a minute when ``warn``.

    Training and validation keep their own counters, so a validation set with long utterances neither inflates
    the training summary nor triggers the advice to filter the training data.
    """

    def __init__(self, purpose: str, warn: bool = True, warn_interval_s: float = 60.0):
        self.purpose = purpose
        self.total = 0  # utterances left out so far
        self.last = 0  # utterances left out by the latest batch
        self._warning = RateLimitedWarning(warn_interval_s) if warn else None

    def note(self, num_skipped: int, batch_size: int) -> None:
        self.last = num_skipped
        self.total += num_skipped
        if num_skipped == 0 or self._warning is None:
            return
        self._warning.note(
            num_skipped,
            lambda since_last: (
                f"AlignerLoss: skipped {since_last} {self.purpose} utterance(s) since the last warning "
                f"({self.total} in total; {num_skipped}/{batch_size} in this batch) whose "
                "encoder output is shorter than tokens+1 (EOS) and cannot be aligned. Filter them at the "
                "data level, e.g. Lhotse `max_tps`, or use less subsampling / a larger vocabulary."
            ),
        )
