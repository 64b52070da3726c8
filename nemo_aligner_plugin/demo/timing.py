"""Decoding time of one batch, encoder apart: the demo's side-by-side "encoder ms" and "decode ms" columns.

B: batch size, T: samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["decode_ms_per_batch"]


def decode_ms_per_batch(model: Any, manifest: Path, batch_size: int = 32, repeats: int = 5) -> dict:
    """Median greedy decoding time for one batch of test utterances, encoder excluded (and encoder time apart)."""
    import soundfile as sf
    import torch
    from nemo.collections.asr.models import EncDecCTCModel

    from nemo_aligner_plugin.manifests import read_predictions

    entries = read_predictions(manifest)[:batch_size]
    audio = [torch.from_numpy(sf.read(e["audio_filepath"], dtype="float32")[0]) for e in entries]
    device = next(model.parameters()).device
    lengths = torch.tensor([a.numel() for a in audio], device=device)
    signal = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True).to(device)  # (B, T)

    def median_ms(fn: Callable[[], Any]) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000)
        return sorted(times)[len(times) // 2]

    def encode():
        return model.forward(input_signal=signal, input_signal_length=lengths)

    with torch.inference_mode():
        encoder_ms = median_ms(encode)
        outputs = encode()
        if isinstance(model, EncDecCTCModel):  # (log-probs, lengths, argmax)

            def decode():
                return model.decoding.ctc_decoder_predictions_tensor(outputs[0], decoder_lengths=outputs[1])
        else:  # aligner and RNN-T: (encoder output, lengths) through their RNNTDecoding-style wrapper

            def decode():
                return model.decoding.rnnt_decoder_predictions_tensor(
                    encoder_output=outputs[0], encoded_lengths=outputs[1]
                )

        decode_ms = median_ms(decode)
    return {"batch": len(entries), "encoder_ms": round(encoder_ms, 1), "decode_ms": round(decode_ms, 2),
            "threads": torch.get_num_threads()}  # fmt: skip
