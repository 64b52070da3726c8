"""Live transcription with a Chunkwise Aligner: audio in, text out, as the audio arrives.

F: mel features, D: encoder dim, C: chunk size (encoder frames).

``StreamingTranscriber(model).feed(samples)`` returns the text the new audio completed; ``finish()`` flushes the
last, partial chunk and returns the whole text. Audio becomes features (``StreamingFeatures``), features become
encoder chunks through NeMo's cache-aware streaming step (``EncoderStream``), and each chunk is decoded by the
same ``chunkwise_greedy`` that decodes whole files offline, from the decoder state the previous chunk ended in.
What is held between calls is bounded: a few feature frames, NeMo's attention and convolution caches (left
context), the LSTM state, and the tokens emitted so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from nemo_aligner_plugin.chunkwise.encoder_stream import EncoderStream
from nemo_aligner_plugin.chunkwise.features import StreamingFeatures
from nemo_aligner_plugin.decoding.chunkwise import chunkwise_greedy
from nemo_aligner_plugin.decoding.strategies import strategy_options
from nemo_aligner_plugin.decoding.types import DecoderState
from nemo_aligner_plugin.frames import encoder_frame_seconds

__all__ = ["Emission", "StreamingTranscriber"]


@dataclass
class Emission:
    """Tokens one encoder chunk released: what a caller needs for latency (audio time) and cost (compute time)."""

    chunk: int  # chunk index, 0-based
    stream_seconds: float  # audio the stream had received when the tokens came out (finish(): all of it)
    tokens: list[int]  # token ids the chunk emitted
    compute_seconds: float  # wall time of the feed()/finish() call that produced the chunk (shared by its chunks)


class StreamingTranscriber:
    """One stream through a chunkwise ``AlignerEncoderModel`` (batch size 1; make one per stream)."""

    def __init__(self, model: torch.nn.Module):
        if getattr(model, "chunkwise", None) is None:
            raise ValueError(
                "StreamingTranscriber needs a model with aligner_type=chunkwise (configs/chunkwise_demo.yaml); "
                f"this one has aligner_type={getattr(model, 'aligner_type', None)!r}"
            )
        self.model = model.eval()
        self.sample_rate = int(model.preprocessor._sample_rate)
        self.frame_seconds = encoder_frame_seconds(model)
        self._decode_options = strategy_options(model.cfg.decoding)  # chunkwise_greedy's, with the model's chunking
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next ``feed`` starts a new one."""
        self._features = StreamingFeatures(self.model.preprocessor)
        self._encoder = EncoderStream(self.model.encoder)
        self._state: Optional[DecoderState] = None
        self._samples = 0  # audio samples fed so far
        self.tokens: list[int] = []  # every token emitted so far
        self.emissions: list[Emission] = []  # one entry per decoded chunk
        self.text = ""  # the transcript so far
        self.finished = False

    @property
    def chunk_seconds(self) -> float:
        """Audio per encoder chunk: the unit text comes out in."""
        return self.frame_seconds * int(self._decode_options.chunk_size)

    @property
    def seconds_fed(self) -> float:
        return self._samples / self.sample_rate

    def feed(self, samples: Union[np.ndarray, torch.Tensor]) -> str:
        """Add audio (1-D float, the model's sample rate); returns the text it completed ("" if none yet)."""
        if self.finished:
            raise RuntimeError("this stream is finished: call reset() to start another")
        audio = _as_audio(samples)
        started = time.perf_counter()
        self._samples += audio.numel()
        with torch.inference_mode():
            frames = self._encoder.push(self._features.push(audio))
            return self._decode(frames, started)

    def finish(self) -> str:
        """End the stream: decode what is left (the last, partial chunk) and return the whole transcript."""
        if not self.finished:
            started = time.perf_counter()
            with torch.inference_mode():
                frames = self._encoder.push(self._features.flush())
                frames = torch.cat([frames, self._encoder.flush()], dim=0)
                self._decode(frames, started)
            self.finished = True
        return self.text

    def _decode(self, frames: torch.Tensor, started: float) -> str:
        """Decode whole chunks of encoder frames (n, D) (the last one may be partial at the end of the stream)."""
        chunk = self._decode_options.chunk_size
        new_tokens: list[list[int]] = []
        for start in range(0, frames.size(0), chunk):
            piece = frames[start : start + chunk].unsqueeze(0)
            lens = torch.tensor([piece.size(1)], device=piece.device)
            hyps, self._state = chunkwise_greedy(
                self.model.decoder, self.model.joint, piece, lens, self.model.eos_id, self._decode_options, self._state
            )
            new_tokens.append(hyps.tokens[0, : int(hyps.lengths[0])].tolist())
        elapsed = time.perf_counter() - started
        for tokens in new_tokens:  # chunks come in order, one emission each
            self.emissions.append(Emission(len(self.emissions), self.seconds_fed, tokens, elapsed))
            self.tokens.extend(tokens)
        previous = self.text
        self.text = self.model.tokenizer.ids_to_text(self.tokens) if self.tokens else ""
        return self.text[len(previous) :] if self.text.startswith(previous) else self.text


def _as_audio(samples: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """1-D float32 tensor; refuses other shapes and non-finite values by name."""
    audio = torch.as_tensor(np.asarray(samples) if not isinstance(samples, torch.Tensor) else samples)
    if audio.ndim != 1:
        raise ValueError(f"feed() takes 1-D mono audio samples, got shape {tuple(audio.shape)}")
    audio = audio.to(torch.float32)
    if not bool(torch.isfinite(audio).all()):
        raise ValueError("feed() got NaN or infinite audio samples")
    return audio
