"""Plumbing that lets NeMo's WER metric, ``transcribe()`` and Hypothesis post-processing drive aligner decoding.

NeMo's WER metric accepts only its own decoding classes, so we keep an ``RNNTBPEDecoding`` shell (it
detokenizes, strips the blank id -- our EOS -- and formats hypotheses) and install the aligner
strategy as its inner ``.decoding`` callable. Nothing else in the package knows about this trick.

B: batch size, N: hypotheses per utterance, D: encoder dim, T: encoder frames.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from nemo.collections.asr.parts.submodules.rnnt_decoding import RNNTBPEDecoding, RNNTBPEDecodingConfig
from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis, NBestHypotheses
from omegaconf import DictConfig, OmegaConf

from nemo_aligner_plugin.decoding.strategies import STRATEGIES, strategy_options
from nemo_aligner_plugin.decoding.types import BatchedHyps, BeamHyps
from nemo_aligner_plugin.eval_mode import eval_mode

__all__ = ["AlignerBPEDecoding", "AlignerDecodingComputer", "to_hypotheses", "to_nbest_hypotheses"]


def to_hypotheses(hyps: BatchedHyps, encoder_out_lens: torch.Tensor) -> list[Hypothesis]:
    """Convert batched tensors to NeMo Hypothesis objects (token frame indices in ``timestamp``)."""
    tokens, lengths, frames = hyps.tokens.cpu(), hyps.lengths.cpu(), hyps.frames.cpu()
    scores, lens = hyps.scores.cpu(), encoder_out_lens.cpu()
    return [
        Hypothesis(
            score=float(scores[b]),
            y_sequence=tokens[b, : lengths[b]].clone(),
            timestamp=frames[b, : lengths[b]].clone(),
            length=int(lens[b]),
        )
        for b in range(tokens.size(0))
    ]


def to_nbest_hypotheses(hyps: BeamHyps, encoder_out_lens: torch.Tensor) -> list[NBestHypotheses]:
    """Convert beam results to one NeMo ``NBestHypotheses`` per utterance (best first, empty slots dropped)."""
    tokens, lengths, scores = hyps.tokens.cpu(), hyps.lengths.cpu(), hyps.scores.cpu()
    num_hyps, lens = hyps.num_hyps.cpu(), encoder_out_lens.cpu()
    return [
        NBestHypotheses(
            [
                Hypothesis(
                    score=float(scores[b, n]),
                    y_sequence=tokens[b, n, : lengths[b, n]].clone(),
                    timestamp=torch.arange(int(lengths[b, n])),
                    length=int(lens[b]),
                )
                for n in range(int(num_hyps[b]))
            ]
        )
        for b in range(tokens.size(0))
    ]


class AlignerDecodingComputer:
    """Callable with the signature NeMo's RNN-T decoding wrapper expects of its inner ``.decoding``."""

    def __init__(self, decoding_cfg: DictConfig, decoder, joint, eos_id: int):
        self.strategy = STRATEGIES[decoding_cfg.strategy]
        self.fn = self.strategy.fn
        self.strategy_cfg = strategy_options(decoding_cfg)
        self.decoder, self.joint, self.eos_id = decoder, joint, eos_id

    def __call__(
        self,
        encoder_output: torch.Tensor,
        encoded_lengths: torch.Tensor,
        partial_hypotheses: Optional[list] = None,
    ) -> tuple[Union[list[Hypothesis], list[NBestHypotheses]]]:
        """encoder_output: (B, D, T) as NeMo passes it; returns a 1-tuple like NeMo's decoders.

        N-best lists (``NBestHypotheses``) come back when the strategy says ``return_best_hypothesis=False``;
        NeMo's ``rnnt_decoder_predictions_tensor`` then returns a list of hypotheses per utterance.
        """
        if partial_hypotheses:
            raise NotImplementedError("Aligner decoding does not take partial hypotheses (streaming RNN-T feature).")
        with eval_mode(self.decoder, self.joint):  # non-AR: no decoder
            hyps, _ = self.fn(
                self.decoder,
                self.joint,
                encoder_output.transpose(1, 2),
                encoded_lengths,
                self.eos_id,
                self.strategy_cfg,
            )
        if isinstance(hyps, BeamHyps) and not self.strategy_cfg.return_best_hypothesis:
            return (to_nbest_hypotheses(hyps, encoded_lengths),)
        return (to_hypotheses(self.strategy.best(hyps), encoded_lengths),)


class AlignerBPEDecoding(RNNTBPEDecoding):
    """RNNTBPEDecoding whose search is an aligner strategy; EOS takes the RNN-T blank id."""

    def __init__(self, decoding_cfg: DictConfig, decoder, joint, tokenizer):
        shell_cfg = OmegaConf.structured(RNNTBPEDecodingConfig(strategy="greedy", compute_timestamps=False))
        super().__init__(decoding_cfg=shell_cfg, decoder=decoder, joint=joint, tokenizer=tokenizer)
        self.aligner_cfg = decoding_cfg
        self.decoding = AlignerDecodingComputer(decoding_cfg, decoder, joint, eos_id=self.blank_id)
