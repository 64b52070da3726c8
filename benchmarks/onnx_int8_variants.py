"""Which int8 quantization of the exported Conformer encoder is fastest on this CPU, side by side in one run.

The paper-size encoder (configs/aligner_conformer_bpe.yaml: 17x512, random weights) is exported twice, as NeMo
exports it and with the pointwise convolutions as MatMuls (what ``model.export`` ships), then quantized the ways
onnxruntime offers; every variant runs the same (B, 80, frames) batch in interleaved rounds on ``--threads``
threads, PyTorch eager included. Prints seconds, the speed-up over ONNX fp32 and the mean relative error of the
output against fp32. ``python benchmarks/onnx_int8_variants.py [--batch 8 --frames 1201 --rounds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from nemo.collections.asr.modules import ConformerEncoder
from omegaconf import OmegaConf
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

from nemo_aligner_plugin.onnx.export import _pointwise_convs_as_linear

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "aligner_conformer_bpe.yaml"
MATMULS = ["MatMul", "Gemm"]
VARIANTS = {  # name -> (pointwise convs as MatMul, quantize_dynamic arguments; None: fp32)
    "fp32": (False, None),
    "fp32, pointwise as MatMul": (True, None),
    "int8 all default ops (Conv -> ConvInteger)": (False, {"weight_type": QuantType.QInt8}),
    "int8 MatMul/Gemm, QUInt8 weights": (False, {"weight_type": QuantType.QUInt8, "op_types_to_quantize": MATMULS}),
    "int8 MatMul/Gemm, QInt8, const B only": (
        False,
        {"weight_type": QuantType.QInt8, "op_types_to_quantize": MATMULS, "extra_options": {"MatMulConstBOnly": 1}},
    ),
    "int8 all default ops, QUInt8 weights (Conv -> ConvInteger u8)": (False, {"weight_type": QuantType.QUInt8}),
    "pointwise as MatMul + QInt8 const B only, then Conv QUInt8": (
        True,
        [
            {"weight_type": QuantType.QInt8, "op_types_to_quantize": MATMULS, "extra_options": {"MatMulConstBOnly": 1}},
            {"weight_type": QuantType.QUInt8, "op_types_to_quantize": ["Conv"]},
        ],
    ),
    "shipped: pointwise as MatMul + QInt8 const B only": (
        True,
        {"weight_type": QuantType.QInt8, "op_types_to_quantize": MATMULS, "extra_options": {"MatMulConstBOnly": 1}},
    ),
}


def build_encoder() -> ConformerEncoder:
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIG).model.encoder, resolve=False)
    cfg.pop("_target_")
    cfg.update(feat_in=80, d_model=512)  # the YAML's interpolations, resolved to the paper's sizes
    torch.manual_seed(0)
    return ConformerEncoder(**cfg).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1201, help="feature frames (1201 = 12 s, 300 encoder frames)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoder = build_encoder()
    x = np.random.default_rng(0).standard_normal((args.batch, 80, args.frames)).astype(np.float32)
    feed = {"audio_signal": x, "length": np.full(args.batch, args.frames, dtype=np.int64)}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    options.enable_cpu_mem_arena = False  # nine sessions of a 115M-parameter model: free activations after each run
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the runtime runs it
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        base = {}
        for pointwise in (False, True):
            path = Path(scratch) / f"encoder_pw{int(pointwise)}.onnx"
            if pointwise:
                with _pointwise_convs_as_linear(encoder):
                    encoder.export(str(path))
            else:
                encoder.export(str(path))
            prepared = path.with_suffix(".pre.onnx")
            quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
            base[pointwise] = (path, prepared)
        for name, (pointwise, quant) in VARIANTS.items():
            path, prepared = base[pointwise]
            if quant is not None:  # one quantize_dynamic pass, or several in turn
                path = prepared
                for step, arguments in enumerate(quant if isinstance(quant, list) else [quant]):
                    target = Path(scratch) / f"{len(runs)}-{step}.onnx"
                    quantize_dynamic(str(path), str(target), **arguments)
                    path = target
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            runs[name] = lambda s=session: s.run(None, feed)[0]
        with torch.inference_mode():
            runs["PyTorch eager"] = lambda: encoder(
                audio_signal=torch.from_numpy(x), length=torch.from_numpy(feed["length"])
            )[0].numpy()
            reference = runs["fp32"]()
            outputs = {name: run() for name, run in runs.items()}  # warm-up, and the outputs compared
            times = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, run in runs.items():
                    start = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - start)
    fp32 = statistics.median(times["fp32"])
    print(f"B={args.batch}, {args.frames} feature frames, {args.threads} threads, median of {args.rounds} rounds")
    print("| encoder | seconds | vs ONNX fp32 | mean rel. error |\n|---|---|---|---|")
    for name in runs:
        median = statistics.median(times[name])
        error = float(np.abs(outputs[name] - reference).mean() / np.abs(reference).mean())
        print(f"| {name} | {median:.2f} | {fp32 / median:.2f}x | {error:.4f} |")


if __name__ == "__main__":
    main()
