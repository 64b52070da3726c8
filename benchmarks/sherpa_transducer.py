"""System (d) of the deployment benchmark: a NeMo RNN-T exported as sherpa-onnx documents, decoded by sherpa-onnx.

B: batch, C: mel features, T: feature frames (10 ms), T': encoder frames (T / subsampling), D: encoder dim.

The export follows sherpa-onnx's scripts for NeMo transducers (scripts/nemo/fast-conformer-hybrid-transducer-ctc/
export-onnx-transducer-non-streaming.py): NeMo's own ``encoder.export`` / ``decoder.export`` / ``joint.export``, the
metadata sherpa-onnx reads from encoder.onnx (vocab_size without blank, normalize_type, pred_rnn_layers,
pred_hidden, subsampling_factor, feat_dim, model_type), ``tokens.txt`` as "piece id" lines with ``<blk>`` last, and
onnxruntime's ``quantize_dynamic`` (QUInt8 weights) for int8, the int8 files named ``*.int8.onnx`` as in sherpa's
release folders. The recognizer is ``OfflineRecognizer.from_transducer(..., model_type="nemo_transducer")`` with
greedy search (at most 10 symbols a frame). sherpa-onnx computes its own fbank from the waveform (its source:
kaldi-native-fbank, 25 ms povey window, 0-7600 Hz librosa mel bins, then NeMo's per-feature normalisation); the NeMo
preprocessor's window is not exported. On the demo RNN-T (32 ms hann window) the graphs fed NeMo's own features give
NeMo's transcripts exactly, while sherpa-onnx's gives 39 of 50 identical and +1.5 WER points.

Runtime imports: numpy, soundfile, sherpa_onnx (onnxruntime only in ``encoder_seconds``); export needs torch/NeMo.

    python benchmarks/sherpa_transducer.py --nemo /work/models/demo_rnnt.nemo \
        --manifest /tmp/demo3/data/demo/corpus/test_manifest.json --limit 50 --out /tmp/sherpa_demo
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import soundfile as sf

Item = Union[str, Path, np.ndarray]
PARTS = ("encoder", "decoder", "joiner")
SAMPLE_RATE = 16000  # sherpa-onnx's NeMo fbank; the export refuses models at other rates
FRAME_SHIFT = 160  # samples per fbank frame at 16 kHz (10 ms)
BLANK = "<blk>"


def export_for_sherpa(rnnt_model: Any, out_dir: Union[str, Path], quantize: Optional[str] = None) -> Path:
    """Write encoder/decoder/joiner ONNX files, tokens.txt and sherpa's metadata for a NeMo RNN-T; return the folder.

    ``quantize="int8"`` writes only ``{encoder,decoder,joiner}.int8.onnx`` (+ tokens.txt), as sherpa's int8 releases.
    """
    import onnx  # late: onnx, torch and NeMo are needed to export, never to decode

    if quantize not in (None, "int8"):
        raise ValueError(f"quantize={quantize!r}: expected None or 'int8'")
    pre = rnnt_model.cfg.preprocessor
    normalize = "" if pre.get("normalize", "NA") in ("NA", None) else str(pre.normalize)
    if normalize not in ("", "per_feature"):
        raise ValueError(f"preprocessor.normalize={normalize!r}: sherpa-onnx reads only 'per_feature' or 'NA'")
    rate = int(pre.get("sample_rate", SAMPLE_RATE))
    if rate != SAMPLE_RATE:
        raise ValueError(f"preprocessor.sample_rate={rate}: sherpa-onnx's NeMo fbank runs at {SAMPLE_RATE} Hz")
    if hasattr(rnnt_model, "cur_decoder"):  # a hybrid RNN-T/CTC model: export its transducer branch
        rnnt_model.change_decoding_strategy(decoder_type="rnnt")
    rnnt_model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for part in PARTS:  # a re-export of the other kind must not leave both kinds in the folder
        (out / f"{part}.{'onnx' if quantize else 'int8.onnx'}").unlink(missing_ok=True)
    vocabulary = list(rnnt_model.joint.vocabulary)
    lines = [f"{piece} {i}" for i, piece in enumerate(vocabulary)] + [f"{BLANK} {len(vocabulary)}"]
    (out / "tokens.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta = {
        "vocab_size": rnnt_model.decoder.vocab_size,  # sherpa adds the blank
        "normalize_type": normalize,
        "pred_rnn_layers": rnnt_model.decoder.pred_rnn_layers,
        "pred_hidden": rnnt_model.decoder.pred_hidden,
        "subsampling_factor": rnnt_model.encoder.subsampling_factor,
        "feat_dim": int(pre.features),
        "model_type": type(rnnt_model).__name__,
        "model_author": "NeMo",
        "version": "1",
        "comment": "exported by benchmarks/sherpa_transducer.py (transducer branch, greedy)",
    }
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        fp32_dir = Path(tmp) if quantize else out
        modules = {"encoder": rnnt_model.encoder, "decoder": rnnt_model.decoder, "joiner": rnnt_model.joint}
        for part, module in modules.items():
            module.export(str(fp32_dir / f"{part}.onnx"))
        encoder = onnx.load(str(fp32_dir / "encoder.onnx"))
        del encoder.metadata_props[:]
        for key, value in meta.items():
            encoder.metadata_props.add(key=key, value=str(value))
        onnx.save(encoder, str(fp32_dir / "encoder.onnx"))
        if quantize:
            quantize_int8(fp32_dir, out)
    return out


def quantize_int8(fp32_dir: Path, out: Path) -> None:
    """onnxruntime dynamic int8 of each part, as sherpa-onnx's scripts: QUInt8 weights, activations quantized per
    tensor at run time (over the whole padded batch, so int8 outputs depend a little on batch composition)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic warns once per tensor it cannot quantize
    try:
        for part in PARTS:
            model_input, model_output = str(fp32_dir / f"{part}.onnx"), str(out / f"{part}.int8.onnx")
            quantize_dynamic(model_input=model_input, model_output=model_output, weight_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)


def model_files(folder: Union[str, Path]) -> dict[str, Path]:
    """The ONNX files and tokens.txt of an exported folder (fp32 or int8), checked here because sherpa-onnx's
    own checks end the process (``_Exit``) instead of raising."""
    folder = Path(folder)
    files = {"tokens": folder / "tokens.txt"}
    for part in PARTS:
        found = [p for p in (folder / f"{part}.onnx", folder / f"{part}.int8.onnx") if p.is_file()]
        if len(found) != 1:
            what = "neither" if not found else "both"
            raise FileNotFoundError(f"{folder}: expected one of {part}.onnx / {part}.int8.onnx, found {what}")
        files[part] = found[0]
    if not files["tokens"].is_file():
        raise FileNotFoundError(f"{files['tokens']}: missing")
    lines = files["tokens"].read_text(encoding="utf-8").splitlines()
    if not lines or lines[-1] != f"{BLANK} {len(lines) - 1}":
        raise ValueError(f"{files['tokens']}: the last line must be '{BLANK} {len(lines) - 1}' (blank last)")
    return files


def load_audio(item: Item, sample_rate: int) -> tuple[np.ndarray, int]:
    """(samples, rate) of a path or an array at ``sample_rate``; channels averaged (sherpa resamples itself)."""
    if isinstance(item, np.ndarray):
        audio, rate = item, sample_rate
    else:
        audio, rate = sf.read(str(item), dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


class SherpaTransducer:
    """sherpa-onnx's offline NeMo-transducer recognizer (greedy) on an ``export_for_sherpa`` folder.

    ``timings`` holds cumulative seconds: ``audio`` (reading files), ``features`` (creating streams and sherpa's
    fbank, computed in ``accept_waveform``), ``decode`` (``decode_streams``: feature normalisation and padding, the
    batched encoder, then greedy search one utterance at a time, and detokenisation). Reset them after a warm-up
    with ``runner.timings = dict.fromkeys(runner.timings, 0.0)``.
    """

    def __init__(self, folder: Union[str, Path], num_threads: int = 2) -> None:
        import sherpa_onnx

        self.files = model_files(folder)
        self.num_threads = num_threads
        self.recognizer = sherpa_onnx.OfflineRecognizer.from_transducer(
            encoder=str(self.files["encoder"]),
            decoder=str(self.files["decoder"]),
            joiner=str(self.files["joiner"]),
            tokens=str(self.files["tokens"]),
            num_threads=num_threads,
            sample_rate=SAMPLE_RATE,
            decoding_method="greedy_search",
            model_type="nemo_transducer",
        )
        self.timings = {"audio": 0.0, "features": 0.0, "decode": 0.0}

    def transcribe(self, items: Sequence[Item], sample_rate: int = SAMPLE_RATE, batch_size: int = 8) -> list[str]:
        """Texts of paths or 1-D float32 arrays (at ``sample_rate``), ``batch_size`` streams per ``decode_streams``."""
        texts = []
        for start in range(0, len(items), batch_size):
            t0 = time.perf_counter()
            audios = [load_audio(item, sample_rate) for item in items[start : start + batch_size]]
            t1 = time.perf_counter()
            streams = []
            for audio, rate in audios:
                stream = self.recognizer.create_stream()
                stream.accept_waveform(rate, audio)
                streams.append(stream)
            t2 = time.perf_counter()
            self.recognizer.decode_streams(streams)
            t3 = time.perf_counter()
            texts += [stream.result.text for stream in streams]
            for key, seconds in zip(("audio", "features", "decode"), (t1 - t0, t2 - t1, t3 - t2), strict=True):
                self.timings[key] += seconds
        return texts


def sherpa_frames(num_samples: int) -> int:
    """Feature frames kaldi-native-fbank makes of 16 kHz audio (snip_edges=False: one frame per 10 ms, rounded)."""
    return (num_samples + FRAME_SHIFT // 2) // FRAME_SHIFT


def item_samples(item: Item, sample_rate: int) -> int:
    """Samples of an item once at 16 kHz (sherpa resamples files and arrays at other rates)."""
    if isinstance(item, np.ndarray):
        samples, rate = item.shape[0], sample_rate
    else:
        info = sf.info(str(item))
        samples, rate = info.frames, info.samplerate
    return round(samples * SAMPLE_RATE / rate)


def encoder_seconds(
    folder: Union[str, Path],
    items: Sequence[Item],
    num_threads: int = 2,
    sample_rate: int = SAMPLE_RATE,
    batch_size: int = 8,
    seed: int = 0,
) -> float:
    """Seconds the folder's encoder ONNX takes alone in onnxruntime on the batches ``SherpaTransducer`` would run.

    sherpa-onnx reports no split of its time, so the harness estimates its decoder as
    ``SherpaTransducer.timings["decode"] - encoder_seconds(...)``: the same batches (``batch_size`` items, zero-padded
    to the longest as sherpa's PadSequence does), the same feature shapes (B, C, T) with T = ``sherpa_frames``, the
    same thread settings (intra- and inter-op = ``num_threads``, full graph optimisation). Feature values are
    seeded N(0, 1) draws (what per-feature normalised features look like): a Conformer's cost does not depend on
    them. One untimed warm-up batch first. What the estimate leaves out or mixes in: sherpa's fbank (timed apart, in
    ``timings["features"]``); normalisation, padding and transposes inside ``decode_streams`` (counted as decoder);
    and sherpa-onnx bundles its own onnxruntime build (1.28 for sherpa-onnx 2.0.1), which may run the encoder a
    little faster or slower than the Python onnxruntime timed here.
    """
    import onnxruntime as ort

    files = model_files(folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = num_threads
    session = ort.InferenceSession(str(files["encoder"]), options, providers=["CPUExecutionProvider"])
    feat_dim = session.get_inputs()[0].shape[1]
    rng = np.random.default_rng(seed)
    batches = []
    for start in range(0, len(items), batch_size):
        frames = np.array([sherpa_frames(item_samples(i, sample_rate)) for i in items[start : start + batch_size]])
        feats = rng.standard_normal((len(frames), feat_dim, frames.max()), dtype=np.float32)
        for row, n in enumerate(frames):
            feats[row, :, n:] = 0.0
        batches.append({"audio_signal": feats, "length": frames.astype(np.int64)})
    names = [i.name for i in session.get_inputs()]
    feeds = [dict(zip(names, batch.values(), strict=True)) for batch in batches]
    if feeds:
        session.run(None, feeds[0])
    start = time.perf_counter()
    for feed in feeds:
        session.run(None, feed)
    return time.perf_counter() - start


def nemo_texts(model: Any, paths: list[str], batch_size: int) -> list[str]:
    hyps = model.transcribe(paths, batch_size=batch_size, verbose=False)
    hyps = hyps[0] if isinstance(hyps, tuple) else hyps
    return [h if isinstance(h, str) else h.text for h in hyps]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Export a .nemo RNN-T (fp32 and int8), transcribe a manifest with NeMo and sherpa-onnx, print WERs."""
    import jiwer
    from nemo.collections.asr.models import ASRModel

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--nemo", required=True, help="an EncDecRNNTBPEModel .nemo")
    parser.add_argument("--manifest", required=True, help="NeMo manifest with audio_filepath and text")
    parser.add_argument("--limit", type=int, default=50, help="first N lines of the manifest")
    parser.add_argument("--out", required=True, help="folder for the fp32/ and int8/ exports")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    rows = [json.loads(line) for line in Path(args.manifest).read_text().splitlines()[: args.limit]]
    paths, refs = [r["audio_filepath"] for r in rows], [r["text"] for r in rows]
    model = ASRModel.restore_from(args.nemo, map_location="cpu").eval()
    systems = {"nemo transcribe()": nemo_texts(model, paths, args.batch_size)}
    for kind in ("fp32", "int8"):
        folder = export_for_sherpa(model, Path(args.out) / kind, quantize=None if kind == "fp32" else "int8")
        runner = SherpaTransducer(folder, num_threads=args.threads)
        systems[f"sherpa-onnx {kind}"] = runner.transcribe(paths, batch_size=args.batch_size)
        encoder = encoder_seconds(folder, paths, args.threads, batch_size=args.batch_size)
        split = ", ".join(f"{k} {v:.2f} s" for k, v in runner.timings.items())
        print(f"sherpa-onnx {kind}: {split}; encoder.onnx alone {encoder:.2f} s")
    reference = systems["nemo transcribe()"]
    print(f"{len(refs)} utterances of {args.manifest}")
    for name, hyps in systems.items():
        same = sum(h == r for h, r in zip(hyps, reference, strict=True))
        print(f"{name}: WER {100 * jiwer.wer(refs, hyps):.2f}%, identical to NeMo's {same}/{len(refs)}")


if __name__ == "__main__":
    main()
