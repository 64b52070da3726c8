"""``AlignerEncoderModel.export(dir)``: one self-contained folder that runs without torch or NeMo.

The two graphs are NeMo's own exports of the model's subnets (``list_export_subnets()``: ``encoder`` and
``decoder_joint``, NeMo's ``RNNTDecoderJoint``), so they take the inputs NeMo RNN-T deployments already know:

- ``encoder.onnx``: mel features (B, F, frames) + lengths (B,) -> encoded frames (B, D, T) + lengths (B,);
- ``decoder_joint.onnx``: one encoder frame (B, D, 1), the previous token (B, 1), its length (B,) and the LSTM
  state (L, B, H) x 2 -> joint logits (B, 1, 1, V+1) and the new state: one step of the aligner's greedy loop
  (frame i meets prediction state i; the previous token of step 0 is EOS, which embeds to zeros like NeMo's SOS).

Beside them: the tokenizer, the feature extractor's window and filterbank (``features.npz``, read by the numpy
extractor in ``features.py``) and ``config.json`` (``folder.py``). NeMo's export leaves the model in export mode
(no start token in the decoder, no log-softmax in the joint, frozen parameters); ``_export_mode`` puts it back.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from nemo_aligner_plugin.onnx.feature_export import feature_spec
from nemo_aligner_plugin.onnx.folder import FILES, FORMAT, FORMAT_VERSION, ONNX_OPSET, QUANTIZATIONS, write_config

__all__ = ["export_folder", "refusal"]


def refusal(model) -> Optional[str]:
    """Why ``model`` cannot be exported as a folder the runtime reads correctly, or None."""
    if model.aligner_type == "chunkwise":
        return (
            "model.aligner_type='chunkwise': the streaming Chunkwise Aligner has no ONNX export yet (its cache-aware "
            "encoder steps and chunk-by-chunk decoding are not in the runtime): stream it in PyTorch, docs/streaming.md"
        )
    if model.aligner_type != "ar" or model.decoder is None:
        return (
            f"model.aligner_type={model.aligner_type!r}: the non-AR aligner (per-frame classifier) is not exported; "
            "only the autoregressive aligner (decoder + joint) is"
        )
    if model.is_adapter_available():
        return "the model has adapters: merge or remove them (model.cfg.adapters) before exporting"
    lstm = getattr(model.decoder.prediction["dec_rnn"], "lstm", None)
    if not isinstance(lstm, torch.nn.LSTM):
        return f"model.decoder: prediction network {type(model.decoder.prediction['dec_rnn']).__name__} is not an LSTM"
    return None


def export_folder(model, folder: str | Path, quantize: Optional[str] = None, opset: int = ONNX_OPSET) -> Path:
    """Write the folder (replacing the files it owns inside ``folder``); ``quantize="int8"``: onnxruntime's
    dynamic int8 quantization of both graphs. Returns the folder."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize={quantize!r}; choose one of {QUANTIZATIONS}")
    reason = refusal(model)
    if reason is not None:
        raise ValueError(f"cannot export this model to ONNX: {reason}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch:
        work = Path(scratch)
        with _export_mode(model), _pointwise_convs_as_linear(model.encoder):
            for subnet in model.list_export_subnets():
                model.get_export_subnet(subnet).export(str(work / f"{subnet}.fp32.onnx"), onnx_opset_version=opset)
        for subnet in model.list_export_subnets():
            source = work / f"{subnet}.fp32.onnx"
            if quantize == "int8":
                _quantize_int8(source, work / f"{subnet}.int8.onnx")
                source = work / f"{subnet}.int8.onnx"
            _stamp(source, subnet, opset, quantize)
            shutil.move(str(source), folder / FILES[subnet])
        settings, arrays = feature_spec(model.preprocessor)
        np.savez(folder / FILES["features"], **arrays)
        (folder / FILES["tokenizer"]).write_bytes(model.tokenizer.tokenizer.serialized_model_proto())
        write_config(folder, _config(model, settings, opset, quantize))
    return folder


def _config(model, settings: dict, opset: int, quantize: Optional[str]) -> dict:
    from nemo_aligner_plugin import __version__
    from nemo_aligner_plugin.frames import encoder_frame_seconds

    subsampling = int(model.encoder.subsampling_factor)
    lstm = model.decoder.prediction["dec_rnn"].lstm
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "plugin_version": __version__,
        "opset": opset,
        "sample_rate": int(model.cfg.sample_rate),
        "features": settings,
        "subsampling_factor": subsampling,
        "frame_seconds": encoder_frame_seconds(model),
        "eos_id": int(model.eos_id),
        "vocab_size": int(model.eos_id),  # EOS is the slot after the vocabulary
        "pred_rnn_layers": int(lstm.num_layers),
        "pred_hidden": int(lstm.hidden_size),
        "encoder_dim": int(model.encoder.d_model),
        "reverse_audio": bool(model.reverse_audio),
        "max_tokens": model.cfg.decoding.greedy.get("max_tokens"),
        "longform": _longform_section(model),
        "quantization": quantize,
        "files": dict(FILES),
    }


def _longform_section(model) -> dict:
    """Where the runtime cuts long audio: above the length ``transcribe()`` routes (null: never), at the model's
    long-form boundaries, in encoder frames (``chunks.py``; the model's ``mode`` is read as ``reset_only``)."""
    from nemo_aligner_plugin.config import PAUSE_WIDTH_SECONDS
    from nemo_aligner_plugin.frames import seconds_to_feat_frames, seconds_to_frames
    from nemo_aligner_plugin.longform.cuts import MIN_CHUNK_SECONDS
    from nemo_aligner_plugin.longform.routing import routing_seconds
    from nemo_aligner_plugin.longform.transcribe import model_longform_config

    cfg = model_longform_config(model)
    size_frames = seconds_to_frames(model, cfg.chunk_seconds)
    return {
        "route_above_seconds": routing_seconds(model, cfg),
        "boundary": cfg.boundary,
        "size_frames": size_frames,
        "search_frames": min(size_frames, seconds_to_frames(model, cfg.pause_search_seconds)),
        "width_frames": seconds_to_frames(model, PAUSE_WIDTH_SECONDS),
        "min_frames": seconds_to_frames(model, MIN_CHUNK_SECONDS),
        "lead_feat_frames": seconds_to_feat_frames(model, cfg.onset_lead_seconds),
    }


@contextmanager
def _export_mode(model) -> Iterator[None]:
    """Eval mode for the export, then the model as it was: NeMo's export flags reset, parameters trainable."""
    was_training = model.training
    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    flags = (model.decoder._rnnt_export, model.joint.log_softmax, getattr(model.joint, "_fuse_loss_wer", None))
    model.eval()
    try:
        yield
    finally:
        model.decoder._rnnt_export, model.joint.log_softmax = flags[0], flags[1]
        if flags[2] is not None:
            model.joint._fuse_loss_wer = flags[2]
        for name, p in model.named_parameters():
            p.requires_grad_(grads[name])
        model.train(was_training)


class _PointwiseLinear(torch.nn.Module):
    """A kernel-1 Conv1d (B, C, T) computed as a Linear: the same numbers, exported as a MatMul."""

    def __init__(self, conv: torch.nn.Conv1d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv.weight.squeeze(-1)
        return torch.nn.functional.linear(x.transpose(1, 2), weight, self.conv.bias).transpose(1, 2)


@contextmanager
def _pointwise_convs_as_linear(encoder) -> Iterator[None]:
    """The Conformer convolution module's pointwise convs as MatMuls while exporting: onnxruntime's dynamic int8
    quantizes MatMuls well and Convs badly (ConvInteger ran the paper-size encoder 1.6x slower than fp32), and
    these two convs hold a quarter of the encoder's weights. Their fp32 graph is as fast either way."""
    swapped = []
    for module in encoder.modules():
        for name in ("pointwise_conv1", "pointwise_conv2"):
            conv = getattr(module, name, None)
            if type(conv) is torch.nn.Conv1d and conv.kernel_size == (1,) and conv.groups == 1 and conv.stride == (1,):
                if conv.padding in ((0,), "valid") and conv.dilation == (1,):
                    setattr(module, name, _PointwiseLinear(conv))
                    swapped.append((module, name, conv))
    try:
        yield
    finally:
        for module, name, conv in swapped:
            setattr(module, name, conv)


# Dynamic int8: weights of MatMul/Gemm (and the LSTM) stored as int8, activations quantized per call, no
# calibration data. Convolutions stay fp32 (see _pointwise_convs_as_linear); so do the attention products of two
# activations (MatMulConstBOnly), which dynamic quantization makes no faster here and less exact.
_INT8_OPS = ["MatMul", "Gemm", "LSTM"]


def _quantize_int8(source: Path, target: Path) -> None:
    """onnxruntime's recommended pre-processing (graph optimization; no symbolic shape inference, which fails on
    the Conformer's masks), then dynamic quantization of ``_INT8_OPS``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = source.with_suffix(".pre.onnx")
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    quantize_dynamic(
        str(prepared),
        str(target),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=_INT8_OPS,
        extra_options={"MatMulConstBOnly": True},
    )


def _stamp(path: Path, subnet: str, opset: int, quantize: Optional[str]) -> None:
    """Record what wrote the graph in its metadata, so the runtime can tell files of different exports apart."""
    import onnx

    from nemo_aligner_plugin import __version__

    graph = onnx.load(str(path))
    stamp = {
        "nemo_aligner_plugin.subnet": subnet,
        "nemo_aligner_plugin.version": __version__,
        "nemo_aligner_plugin.opset": str(opset),
        "nemo_aligner_plugin.quantization": quantize or "none",
    }
    for key, value in stamp.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))
