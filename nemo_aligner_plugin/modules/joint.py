"""The aligner's joint: only the diagonal of the RNN-T lattice.

B: batch size, T: encoder frames, U1: output positions (tokens + EOS), D: encoder dim,
H: prediction-network dim, J: joint hidden dim, V1: vocabulary + EOS.

Encoder frame i meets prediction state i and nothing else, so we compute (B, U1, V1) logits with
NeMo's RNNTJoint projections instead of its (B, T, U1, V1) broadcast.
"""

from __future__ import annotations

import torch
from nemo.collections.asr.modules import RNNTJoint

__all__ = ["diagonal_logits", "joint_step", "leading_frames"]


def leading_frames(encoder_out: torch.Tensor, positions: int) -> torch.Tensor:
    """(B, T, D) -> (B, positions, D): the frames that carry output positions 0..positions-1.

    When T < positions the missing frames are zeros; such utterances cannot be aligned and the loss
    masks them out.
    """
    frames = encoder_out[:, :positions]
    if frames.size(1) < positions:
        frames = torch.nn.functional.pad(frames, (0, 0, 0, positions - frames.size(1)))
    return frames


def diagonal_logits(joint: RNNTJoint, encoder_out: torch.Tensor, pred_out: torch.Tensor) -> torch.Tensor:
    """Logits for positions 0..U1-1.

    Args:
        joint: NeMo RNNTJoint (its ``enc``/``pred`` projections and ``joint_net``).
        encoder_out: (B, T, D); see ``leading_frames`` for T < U1.
        pred_out: (B, U1, H) prediction-network outputs, position u conditioned on tokens < u.

    Returns:
        (B, U1, V1) unnormalized logits.
    """
    frames = leading_frames(encoder_out, pred_out.size(1))
    return joint.joint_net(joint.project_encoder(frames) + joint.project_prednet(pred_out))


def joint_step(joint: RNNTJoint, encoder_proj: torch.Tensor, pred_out: torch.Tensor) -> torch.Tensor:
    """One decoding step: (B, J) projected encoder frame + (B, H) prediction output -> (B, V1) logits."""
    return joint.joint_net(encoder_proj + joint.project_prednet(pred_out))
