"""``AlignerOnnx``: an exported folder, from WAV to text, with numpy, onnxruntime, sentencepiece and soundfile.

B: batch size, F: mel features, D: encoder dim, T: encoder frames, S: audio samples.

No torch and no NeMo are imported, here or in anything this imports (tests/onnx checks it in a process where
importing either raises). Audio is read like ``transcribe()`` reads it (mono, resampled to the model's rate);
audio longer than the model was trained on is read in chunks (``chunks.py``); greedy decoding is ``greedy.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from nemo_aligner_plugin.onnx.chunks import plan_chunks
from nemo_aligner_plugin.onnx.features import LogMel, read_audio
from nemo_aligner_plugin.onnx.folder import read_config
from nemo_aligner_plugin.onnx.greedy import greedy_decode

__all__ = ["AlignerOnnx", "OnnxTranscript"]

Audio = Union[str, Path, np.ndarray]


@dataclass
class OnnxTranscript:
    """One input's result: its text, token ids, and the encoder frame each token was read off (in the whole
    input; seconds = frame * ``AlignerOnnx.frame_seconds``)."""

    text: str
    tokens: list[int]
    frames: list[int]


class AlignerOnnx:
    """An exported aligner (``AlignerEncoderModel.export(dir)``), ready to transcribe.

    Args:
        folder: the exported folder.
        num_threads: onnxruntime intra-op threads per graph; None: onnxruntime's default (all cores).
        providers: onnxruntime execution providers; None: CPU.
    """

    def __init__(self, folder: Union[str, Path], num_threads: Optional[int] = None, providers=None):
        self.folder = Path(folder)
        self.config = read_config(self.folder)
        files = {role: self.folder / name for role, name in self.config["files"].items()}
        self.encoder = _session(files["encoder"], "encoder", self.config, num_threads, providers)
        self.decoder_joint = _session(files["decoder_joint"], "decoder_joint", self.config, num_threads, providers)
        self.tokenizer = _tokenizer(files["tokenizer"], self.config)
        try:
            with np.load(files["features"]) as arrays:
                self.features = LogMel(self.config["features"], dict(arrays))
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{files['features']}: unreadable feature arrays ({error})") from None
        self.sample_rate = int(self.config["sample_rate"])
        self.frame_seconds = float(self.config["frame_seconds"])
        self.timings = {"features": 0.0, "encoder": 0.0, "decoder": 0.0}  # cumulative seconds per stage

    def transcribe(self, audio: Union[Audio, Sequence[Audio]], batch_size: int = 8) -> list[OnnxTranscript]:
        """Paths or 1-D float arrays at the model's sample rate -> one ``OnnxTranscript`` each, in order."""
        items = [audio] if isinstance(audio, (str, Path, np.ndarray)) else list(audio)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        pieces = []  # (item index, first sample, samples)
        for index, item in enumerate(items):
            samples = self._load(item, index)
            pieces += [(index, start, samples[start:end]) for start, end in self._chunks(samples)]
        tokens: list[list[int]] = [[] for _ in items]
        frames: list[list[int]] = [[] for _ in items]
        samples_per_frame = self.frame_seconds * self.sample_rate
        for first in range(0, len(pieces), batch_size):
            batch = pieces[first : first + batch_size]
            for (index, start, _), row in zip(batch, self._decode([p[2] for p in batch]), strict=True):
                offset = int(round(start / samples_per_frame))
                tokens[index].extend(row)
                frames[index].extend(offset + i for i in range(len(row)))
        return [OnnxTranscript(self._text(t), t, f) for t, f in zip(tokens, frames, strict=True)]

    def _chunks(self, samples: np.ndarray) -> list[tuple[int, int]]:
        """The sample ranges ``samples`` is read in: one, unless it is longer than the model was trained on."""
        longform = self.config["longform"]
        route_above = longform["route_above_seconds"]
        if route_above is None or samples.size <= route_above * self.sample_rate:
            return [(0, samples.size)]
        clock = time.perf_counter()
        features, lengths = self.features([samples])
        self.timings["features"] += time.perf_counter() - clock
        hop = int(self.config["features"]["hop_length"])
        return plan_chunks(samples, features[0, :, : lengths[0]], longform, self.config["subsampling_factor"], hop)

    def _decode(self, signals: list[np.ndarray]) -> list[list[int]]:
        if self.config["reverse_audio"]:
            signals = [s[::-1].copy() for s in signals]
        clock = time.perf_counter()
        feats, feat_lens = self.features(signals)
        self.timings["features"] += time.perf_counter() - clock
        clock = time.perf_counter()
        encoded, encoded_lens = self.encoder.run(
            ["outputs", "encoded_lengths"], {"audio_signal": feats, "length": feat_lens.astype(np.int64)}
        )
        self.timings["encoder"] += time.perf_counter() - clock
        # No feature frames, no encoder frames: the exported length arithmetic truncates (0 + 2 - 3) / 2 toward
        # zero where torch floors it, and would give an empty input one frame to decode.
        encoded_lens = np.where(feat_lens == 0, 0, encoded_lens)
        clock = time.perf_counter()
        tokens = greedy_decode(
            self.decoder_joint,
            encoded,
            encoded_lens,
            eos_id=self.config["eos_id"],
            num_layers=self.config["pred_rnn_layers"],
            hidden=self.config["pred_hidden"],
            max_tokens=self.config["max_tokens"],
        )
        self.timings["decoder"] += time.perf_counter() - clock
        return tokens

    def _load(self, item: Audio, index: int) -> np.ndarray:
        if isinstance(item, (str, Path)):
            samples = read_audio(str(item), self.sample_rate)
            name = str(item)
        elif isinstance(item, np.ndarray):
            if item.ndim != 1:
                raise ValueError(f"audio[{index}]: expected a 1-D array of samples, got shape {item.shape}")
            samples = item.astype(np.float32, copy=False)
            name = f"audio[{index}]"
        else:
            raise TypeError(f"audio[{index}]: expected a path or a 1-D numpy array, got {type(item).__name__}")
        if not np.isfinite(samples).all():
            raise ValueError(f"{name}: audio has NaN or infinite samples")
        return samples

    def _text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode_ids(tokens) if tokens else ""


def _session(path: Path, subnet: str, config: dict, num_threads: Optional[int], providers):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: onnxruntime warns about initializers on every load
    # Idle intra-op threads spin by default, and the runtime alternates two sessions and numpy: a spinning pool
    # takes the cores the next stage needs (demo test split, 2 cores: 2.1x slower end to end with spinning).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        raise ValueError(
            f"{path}: onnxruntime {onnxruntime.__version__} cannot load it ({type(error).__name__}: {error})"
        ) from None
    stamp = session.get_modelmeta().custom_metadata_map
    written = {
        "subnet": stamp.get("nemo_aligner_plugin.subnet"),
        "opset": stamp.get("nemo_aligner_plugin.opset"),
        "quantization": stamp.get("nemo_aligner_plugin.quantization"),
    }
    expected = {"subnet": subnet, "opset": str(config["opset"]), "quantization": config["quantization"] or "none"}
    for key, value in expected.items():
        if written[key] != value:
            raise ValueError(
                f"{path}: {key} {written[key]!r} in the file, {value!r} in config.json: the folder mixes files "
                "from different exports; export the model again"
            )
    return session


def _tokenizer(path: Path, config: dict):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.Load(str(path))
    except (OSError, RuntimeError) as error:
        raise ValueError(f"{path}: not a sentencepiece model ({error})") from None
    if processor.GetPieceSize() != config["vocab_size"]:
        raise ValueError(
            f"{path}: {processor.GetPieceSize()} pieces, config.json says vocab_size {config['vocab_size']}"
        )
    return processor
