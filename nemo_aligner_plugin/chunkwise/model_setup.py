"""What ``AlignerEncoderModel`` does differently when ``aligner_type: chunkwise``: encoder config, loss, decoding.

B: batch size, T: encoder frames, D: encoder dim, U: target tokens, H: prediction-network dim.

``model.chunkwise`` is the one source of the chunking: the encoder's cache-aware attention keys are written from
it before the encoder is built, and the decoding config's chunk geometry is filled from it, so the chunks the
loss trains on, the chunks NeMo's streaming step produces and the chunks the decoder reads are the same.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from nemo.utils import logging
from omegaconf import DictConfig, ListConfig, open_dict

from nemo_aligner_plugin.config import ChunkwiseConfig, read_section
from nemo_aligner_plugin.decoding.strategies import map_greedy_request

__all__ = ["STREAMING_NORMALIZE", "configure_streaming_encoder", "chunkwise_loss", "make_loss", "resolve_decoding"]

STREAMING_NORMALIZE = (None, "NA", "None")  # preprocessor.normalize values that need no whole-utterance statistics
UNSUPPORTED_WITH_CHUNKWISE = ("aux_aligner", "nonar_aux")  # sections whose weight must stay 0


def encoder_streaming_keys(options: ChunkwiseConfig) -> dict[str, Any]:
    """The ConformerEncoder keys that make NeMo's cache-aware streaming run chunks of ``options.chunk_size``."""
    chunk = options.chunk_size
    return {
        "att_context_style": "chunked_limited",
        "att_context_size": [options.left_chunks * chunk, chunk - 1],
        "conv_context_size": "causal",
        "causal_downsampling": True,
    }


def configure_streaming_encoder(cfg: DictConfig) -> ChunkwiseConfig:
    """Check that a chunkwise model config can stream and write its chunking into ``cfg.encoder`` (in place)."""
    options = read_section(cfg, "chunkwise")
    normalize = cfg.preprocessor.get("normalize")
    if normalize not in STREAMING_NORMALIZE:
        raise ValueError(
            f"model.preprocessor.normalize={normalize!r}: aligner_type=chunkwise streams, and per-utterance feature "
            "statistics are not known until the stream ends; set model.preprocessor.normalize=NA"
        )
    for key in UNSUPPORTED_WITH_CHUNKWISE:
        if (cfg.get(key) or {}).get("weight", 0.0) > 0:
            raise ValueError(f"model.{key}.weight > 0 is not supported with aligner_type=chunkwise; set it to 0")
    if cfg.get("reverse_audio"):
        raise ValueError("model.reverse_audio=true cannot stream (it needs the end of the audio first)")
    with open_dict(cfg.encoder):
        for key, value in encoder_streaming_keys(options).items():
            current = cfg.encoder.get(key)
            if isinstance(current, ListConfig):
                current = list(current)
            if current != value:
                logging.info(f"aligner_type=chunkwise: model.encoder.{key} {current!r} -> {value!r} (model.chunkwise)")
                cfg.encoder[key] = value
    return options


def make_loss(eoc_id: int, options: ChunkwiseConfig, loss_options: Any) -> torch.nn.Module:
    """The chunk x label lattice loss with ``model.loss``'s reduction and label smoothing (on the label arcs)."""
    from nemo_aligner_plugin.chunkwise.loss import ChunkwiseLoss

    return ChunkwiseLoss(
        eoc_id=eoc_id,
        chunk_size=options.chunk_size,
        max_labels_per_chunk=options.labels_per_chunk,
        reduction=loss_options.reduction,
        label_smoothing=loss_options.label_smoothing,
        smoothing_mode=loss_options.smoothing_mode,
        prior_include_eos=loss_options.prior_include_eos,
    )


def resolve_decoding(decoding_cfg: DictConfig, options: Optional[ChunkwiseConfig]) -> None:
    """A chunkwise model (``options``) decodes with ``chunkwise_greedy`` and its own chunking; no other model does.

    Greedy requests map to ``chunkwise_greedy``; the model's chunk geometry is written into its options (in place).
    """
    if options is None:
        if decoding_cfg.strategy == "chunkwise_greedy":
            raise ValueError("decoding.strategy='chunkwise_greedy' needs a model with aligner_type=chunkwise")
        return
    map_greedy_request(decoding_cfg, "chunkwise_greedy", "chunkwise")
    for key, value in (("chunk_size", options.chunk_size), ("max_labels_per_chunk", options.labels_per_chunk)):
        given = decoding_cfg.chunkwise.get(key)
        if given is not None and given != value:
            raise ValueError(
                f"decoding.chunkwise.{key}={given} differs from the model's chunking ({value}, model.chunkwise): "
                "the decoder must read the chunks the model was trained on; leave it null"
            )
        decoding_cfg.chunkwise[key] = value


def chunkwise_loss(
    model: torch.nn.Module,
    encoded: torch.Tensor,
    encoded_len: torch.Tensor,
    transcript: torch.Tensor,
    transcript_len: torch.Tensor,
    pred: Optional[torch.Tensor] = None,
    loss: Optional[torch.nn.Module] = None,
) -> torch.Tensor:
    """The chunk x label lattice loss of encoder output ``encoded`` (B, D, T); ``pred`` (B, U+1, H) if computed."""
    from nemo_aligner_plugin.chunkwise.loss import lattice_log_probs

    if pred is None:
        pred = model.prediction_states(transcript, transcript_len)
    options = model.chunkwise
    loss = model.loss if loss is None else loss
    label_logp, eoc_logp, _ = lattice_log_probs(
        model.joint,
        encoded.transpose(1, 2),
        pred,
        transcript,
        options.chunk_size,
        options.labels_per_chunk,
        model.eos_id,
        encoder_lengths=encoded_len,
        target_lengths=transcript_len,
        smoothing=loss.smoothing(transcript, transcript_len, model.eos_id + 1),
    )
    return loss(label_logp=label_logp, eoc_logp=eoc_logp, target_lengths=transcript_len, encoder_lengths=encoded_len)
