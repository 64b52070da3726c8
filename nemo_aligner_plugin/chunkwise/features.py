"""Incremental log-mel features, frame for frame equal to NeMo's offline preprocessor.

Dimensions: F: mel bins (``features``), n: feature frames (hop ``n_window_stride`` samples), L: samples so far.

NeMo's ``FilterbankFeatures`` pads P samples of zeros on both sides (P = n_fft // 2 with its default centred STFT,
``(n_fft - hop) // 2`` with ``exact_pad``), so frame t reads samples [t*hop - P, t*hop - P + n_fft) of the
pre-emphasised audio, and an utterance of L samples has ``get_seq_len(L)`` valid frames. Without whole-utterance
normalisation a frame depends on its window only, so it is final as soon as its window lies inside the audio
received. ``push`` runs the preprocessor itself on the retained tail (left context + new samples) and keeps the
frames that are final; ``flush`` runs it on the tail with NeMo's zero right padding for the last frames. Only the
samples a future frame can still read are retained. One NeMo quirk is reproduced rather than fixed: with
``exact_pad`` its pre-emphasis mask, built from the unpadded length after padding, zeroes the last P samples of the
audio, so there a frame is final only once its window ends P samples before the audio received.
"""

from __future__ import annotations

import numpy as np
import torch
from nemo.collections.asr.modules.audio_preprocessing import AudioToMelSpectrogramPreprocessor

__all__ = ["StreamingFeatures"]

# Normalisations that need statistics over the whole utterance, which a stream does not have yet.
_WHOLE_UTTERANCE_NORMALIZE = ("per_feature", "all_features")


def _check_streamable(preprocessor: AudioToMelSpectrogramPreprocessor) -> None:
    if not isinstance(preprocessor, AudioToMelSpectrogramPreprocessor):
        raise ValueError(f"StreamingFeatures needs an AudioToMelSpectrogramPreprocessor, got {type(preprocessor)}")
    featurizer = preprocessor.featurizer
    if featurizer.normalize in _WHOLE_UTTERANCE_NORMALIZE:
        raise ValueError(
            f"preprocessor.normalize={featurizer.normalize!r} cannot stream: it normalises with the mean and std of "
            "the whole utterance, unknown until the stream ends; train the streaming model with normalize: NA"
        )
    if featurizer.frame_splicing != 1:
        raise ValueError(f"preprocessor.frame_splicing={featurizer.frame_splicing} is not supported; use 1")
    _check_deterministic(preprocessor)


def _check_deterministic(preprocessor: AudioToMelSpectrogramPreprocessor) -> None:
    featurizer = preprocessor.featurizer
    if preprocessor.training and (featurizer.dither > 0 or featurizer.nb_augmentation_prob > 0):
        raise ValueError(
            "the preprocessor is in training mode, where dither / nb_augmentation_prob add noise per call; "
            "call .eval() before streaming"
        )


class StreamingFeatures:
    """One audio stream (batch size 1) turned into NeMo's features frame by frame.

    ``concat(push(a1), push(a2), ..., flush())`` equals the preprocessor's offline features of ``a1 + a2 + ...``
    over ``processed_signal_length``, for any split of the audio.
    """

    def __init__(self, preprocessor: AudioToMelSpectrogramPreprocessor):
        _check_streamable(preprocessor)
        self.preprocessor = preprocessor
        featurizer = preprocessor.featurizer
        self.hop_samples: int = featurizer.hop_length
        self.n_fft: int = featurizer.n_fft
        self.n_mels: int = featurizer.nfilt
        self._pad = featurizer.stft_pad_amount if featurizer.exact_pad else featurizer.n_fft // 2
        # With exact_pad NeMo pads before building its pre-emphasis mask from the unpadded length, so the mask
        # zeroes the last P real samples: they count as zeros offline, and are unknown until the stream ends.
        self._masked_end = self._pad if featurizer.exact_pad else 0
        # Left-context frames recomputed per call: the first kept frame's window must not reach the segment's first
        # sample (NeMo pre-emphasis keeps sample 0 as is) nor its zero left padding.
        self._lead_frames = self._pad // self.hop_samples + 1
        self._tail = torch.zeros(0, device=featurizer.fb.device)  # retained samples, from sample _tail_start on
        self._tail_start = 0
        self._samples = 0  # L: samples received
        self._frames_out = 0  # frames returned so far
        self._finished = False

    def num_frames(self, num_samples: int) -> int:
        """Valid feature frames of an utterance of ``num_samples`` samples (NeMo's ``get_seq_len``)."""
        if num_samples <= 0:
            return 0
        return int(self.preprocessor.featurizer.get_seq_len(torch.tensor(num_samples)))

    def final_frames(self, num_samples: int) -> int:
        """Frames that are final once ``num_samples`` samples arrived: their window lies inside the audio."""
        whole_windows = (num_samples - self._masked_end + self._pad - self.n_fft) // self.hop_samples + 1
        return max(0, min(self.num_frames(num_samples), whole_windows))

    def samples_for_frames(self, num_frames: int) -> int:
        """The fewest samples after which ``num_frames`` frames are final (what a live caller must wait for)."""
        if num_frames <= 0:
            return 0
        window_end = (num_frames - 1) * self.hop_samples + self.n_fft - self._pad + self._masked_end  # frame n-1
        counted = num_frames * self.hop_samples + self.n_fft - 2 * self._pad  # get_seq_len reaches n
        return max(1, window_end, counted)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors this stream holds (their sizes stay bounded however long the stream runs)."""
        return {"tail_samples": self._tail}

    def push(self, samples: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Add audio (1-D float32); returns the (F, n) frames that became final."""
        if self._finished:
            raise RuntimeError("StreamingFeatures.push after flush: make a new stream")
        piece = torch.as_tensor(samples, dtype=torch.float32).to(self._tail.device)
        if piece.dim() != 1:
            raise ValueError(f"push takes 1-D audio samples, got shape {tuple(piece.shape)}")
        self._tail = torch.cat([self._tail, piece])
        self._samples += piece.numel()
        return self._emit(self.final_frames(self._samples))

    def flush(self) -> torch.Tensor:
        """End of stream: the (F, n) frames left, computed with NeMo's zero padding past the last sample."""
        if self._finished:
            raise RuntimeError("StreamingFeatures.flush called twice")
        self._finished = True
        return self._emit(self.num_frames(self._samples))

    def _emit(self, frames_end: int) -> torch.Tensor:
        """Frames [frames_out, frames_end) off the tail, whose right end is the audio received so far."""
        if frames_end <= self._frames_out:
            return self._tail.new_zeros(self.n_mels, 0)
        _check_deterministic(self.preprocessor)
        first_frame = self._tail_start // self.hop_samples  # the tail starts at a hop boundary
        length = torch.tensor([self._tail.numel()], device=self._tail.device)
        features, _ = self.preprocessor(input_signal=self._tail[None], length=length)
        new = features[0, :, self._frames_out - first_frame : frames_end - first_frame]
        self._frames_out = frames_end
        self._drop_consumed()
        return new

    def _drop_consumed(self) -> None:
        """Keep samples from ``lead`` frames before the next frame on: all a future frame (and its context) reads."""
        keep_from = max(0, self._frames_out - self._lead_frames) * self.hop_samples
        if keep_from > self._tail_start:
            self._tail = self._tail[keep_from - self._tail_start :].clone()
            self._tail_start = keep_from
