"""The one audio loader: a path, array or tensor -> mono float samples at the model's rate, and its duration.

S: audio samples.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

__all__ = ["AudioInput", "load_audio", "audio_seconds"]

AudioInput = Union[str, np.ndarray, torch.Tensor]


def load_audio(item: AudioInput, sample_rate: int) -> torch.Tensor:
    """A path (read and resampled to ``sample_rate`` by NeMo's AudioSegment, channels averaged) or a 1-D array
    already at that rate -> (S,) float32."""
    if isinstance(item, str):
        from nemo.collections.asr.parts.preprocessing.segment import AudioSegment

        return torch.from_numpy(AudioSegment.from_file(item, target_sr=sample_rate).samples.astype(np.float32))
    return torch.as_tensor(item, dtype=torch.float32).reshape(-1)


def audio_seconds(item: AudioInput, sample_rate: int) -> float:
    """Seconds of a path (from the header where soundfile reads the format) or of a 1-D array at ``sample_rate``."""
    if isinstance(item, str):
        import soundfile

        try:
            return soundfile.info(item).duration
        except RuntimeError:  # a format only librosa reads (e.g. some mp3): decode it
            return load_audio(item, sample_rate).numel() / sample_rate
    return np.asarray(item).size / sample_rate
