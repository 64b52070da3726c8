"""Chunk-by-chunk ConformerEncoder through NeMo's cache-aware streaming, equal to the offline encoder.

Dimensions: F: feature bins, n: feature frames, D: encoder output size, C: encoder frames per attention chunk
(``att_context_size[1] + 1``), s: subsampling factor, T: encoder frames.

With ``chunked_limited`` attention, causal convolutions and causal conv subsampling, encoder frame t reads features
up to s*t only, and a chunk attends to itself and ``att_context_size[0] // C`` chunks before it. NeMo's
``cache_aware_stream_step`` then gives the offline frames chunk by chunk when fed as its
``CacheAwareStreamingAudioBuffer`` and streaming example feed them:
- step 0: the first ``s*(C-1) + 1`` feature frames alone (no pre-encode cache, ``drop_extra_pre_encoded=0``);
- later steps: ``s*C`` new feature frames after the last ``s + 1`` frames already used (the pre-encode cache), with
  the first ``drop_extra_pre_encoded`` subsampled frames dropped (they read the cache's left edge, not the audio);
- the end: whatever is left (fewer frames, NeMo's zero right padding as offline), giving the last partial chunk.
Three ways NeMo itself departs from offline, all avoided here: (1) its ``pad_and_drop_preencoded`` mode feeds step 0
after s + 1 zero frames: the subsampling's second conv then reads ReLU(bias) of those zero frames where offline it
reads zero padding, and the s + 1 frames shift the subsampling phase, so the whole first chunk differs (and through
the caches, what follows); (2) for the same reason its buffer's zero frames in front of a pre-encode cache shorter
than s + 1 frames (step 1 when s*(C-1) + 1 < s + 1, i.e. C = 1) are wrong once the subsampling has 3+ convs
(s >= 8): this wrapper reruns from the stream start instead and drops the frames already out; (3) with
``att_context_size[0] == 0`` ``streaming_post_process`` leaves the attention cache untrimmed (it trims only a cache
size > 0), so it grows to C frames and the next chunk attends to (or crashes on) them; this wrapper trims it.
"""

from __future__ import annotations

import torch
from nemo.collections.asr.modules.conformer_encoder import ConformerEncoder
from nemo.collections.asr.parts.submodules.subsampling import ConvSubsampling

__all__ = ["EncoderStream"]

# Subsamplings whose causal convs (kernel 3, stride 2 per halving) NeMo's pre-encode cache of s + 1 frames covers.
_CACHED_SUBSAMPLINGS = ("striding", "dw_striding")


def _check_streamable(encoder: ConformerEncoder) -> None:
    """Refuse configs whose offline output cache-aware streaming would not reproduce, naming the config key."""
    if not isinstance(encoder, ConformerEncoder):
        raise ValueError(f"EncoderStream needs NeMo's ConformerEncoder, got {type(encoder)}")
    if encoder.att_context_style != "chunked_limited":
        raise ValueError(
            f"encoder.att_context_style={encoder.att_context_style!r}: streaming needs 'chunked_limited' "
            "(attention within a chunk and whole chunks to its left)"
        )
    left, right = encoder.att_context_size[0], encoder.att_context_size[1]
    if right < 0 or left < 0:
        raise ValueError(
            f"encoder.att_context_size={list(encoder.att_context_size)}: both sides must be finite "
            "([left_chunks * C, C - 1]); an unlimited left context would grow the caches with the stream"
        )
    if encoder.conv_context_size[1] != 0:
        raise ValueError(
            f"encoder.conv_context_size={list(encoder.conv_context_size)}: streaming needs 'causal' convolutions "
            "(no right context)"
        )
    pre_encode = encoder.pre_encode
    if not (isinstance(pre_encode, ConvSubsampling) and pre_encode.is_causal):
        raise ValueError("encoder.causal_downsampling must be true: the subsampling convs may not read ahead")
    if pre_encode._subsampling not in _CACHED_SUBSAMPLINGS:
        raise ValueError(f"encoder.subsampling={pre_encode._subsampling!r}: streaming supports {_CACHED_SUBSAMPLINGS}")
    if encoder.self_attention_model != "rel_pos":
        raise ValueError(
            f"encoder.self_attention_model={encoder.self_attention_model!r}: streaming needs 'rel_pos' "
            "(absolute positions restart in every chunk)"
        )
    if encoder.reduction_subsampling is not None:
        raise ValueError("encoder.reduction: NeMo's caches do not support a reduction layer")
    _check_eval(encoder)


def _check_eval(encoder: ConformerEncoder) -> None:
    if encoder.training:
        raise ValueError(
            "the encoder is in training mode (dropout, batch-norm updates, random att_context_size choice); "
            "call .eval() before streaming"
        )


class EncoderStream:
    """One feature stream (batch size 1) through a cache-aware ConformerEncoder, whole chunks at a time.

    ``concat(push(f1), push(f2), ..., flush())`` equals the offline ``encoder(audio_signal=f[None], length=...)``
    (transposed to (T, D)) over its valid length, for any split of the features f.
    """

    def __init__(self, encoder: ConformerEncoder):
        _check_streamable(encoder)
        self.encoder = encoder
        encoder.setup_streaming_params()  # the defaults: one chunk per step, cache from att_context_size[0]
        cfg = encoder.streaming_cfg
        self.chunk_frames: int = encoder.att_context_size[1] + 1  # C
        self.subsampling_factor: int = encoder.subsampling_factor  # s
        self.first_chunk_feat_frames: int = cfg.chunk_size[0]  # s*(C-1) + 1
        self.chunk_feat_frames: int = cfg.shift_size[1]  # s*C
        self._pre_encode_frames = cfg.pre_encode_cache_size[1]  # s + 1
        self._drop_frames = cfg.drop_extra_pre_encoded
        self._channel_cache_frames = cfg.last_channel_cache_size  # att_context_size[0]: the left chunks' frames
        parameter = next(encoder.parameters())
        self._device, self._dtype = parameter.device, parameter.dtype
        self._caches = encoder.get_initial_cache_state(batch_size=1, dtype=self._dtype, device=self._device)
        self._pending = torch.zeros(encoder._feat_in, 0, device=self._device, dtype=self._dtype)
        self._pre_encode_cache: torch.Tensor | None = None  # the last s + 1 features used; None until step 0 ran
        self._frames_out = 0  # encoder frames returned so far
        self._finished = False

    def feat_frames_for_chunks(self, num_chunks: int) -> int:
        """Feature frames needed before ``num_chunks`` whole chunks can be emitted."""
        if num_chunks <= 0:
            return 0
        return self.first_chunk_feat_frames + (num_chunks - 1) * self.chunk_feat_frames

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors this stream holds (their sizes stay bounded however long the stream runs)."""
        channel, time, channel_len = self._caches
        state = {"cache_last_channel": channel, "cache_last_time": time, "cache_last_channel_len": channel_len}
        state["pending_features"] = self._pending
        if self._pre_encode_cache is not None:
            state["pre_encode_cache"] = self._pre_encode_cache
        return state

    def push(self, features: torch.Tensor) -> torch.Tensor:
        """Add (F, n) feature frames; returns the (n_out, D) encoder frames of the chunks now complete."""
        if self._finished:
            raise RuntimeError("EncoderStream.push after flush: make a new stream")
        if features.dim() != 2 or features.size(0) != self._pending.size(0):
            raise ValueError(f"push takes ({self._pending.size(0)}, n) features, got {tuple(features.shape)}")
        self._pending = torch.cat([self._pending, features.to(self._device, self._dtype)], dim=1)
        outputs = []
        while self._pending.size(1) >= self._step_feat_frames():
            outputs.append(self._step(self._pending[:, : self._step_feat_frames()]))
        return self._concat(outputs)

    def flush(self) -> torch.Tensor:
        """End of stream: the (n_rest, D) frames of the last, partial chunk (none if the chunks came out whole)."""
        if self._finished:
            raise RuntimeError("EncoderStream.flush called twice")
        self._finished = True
        if self._pending.size(1) == 0:
            return self._concat([])
        return self._step(self._pending)

    def _step_feat_frames(self) -> int:
        return self.first_chunk_feat_frames if self._pre_encode_cache is None else self.chunk_feat_frames

    def _step(self, new_features: torch.Tensor) -> torch.Tensor:
        """One cache-aware step on ``new_features`` (a leading slice of the pending frames); (n_out, D)."""
        if self._pre_encode_cache is None:
            signal, drop = new_features, 0
        else:
            signal = torch.cat([self._pre_encode_cache, new_features], dim=1)
            # A cache shorter than s + 1 frames holds the whole stream so far: recompute from its start, drop the
            # frames already out (zero frames in front would not match the offline zero padding past layer 1).
            full = self._pre_encode_cache.size(1) == self._pre_encode_frames
            drop = self._drop_frames if full else self._frames_out
        _check_eval(self.encoder)
        channel, time, channel_len = self._caches
        with torch.no_grad():
            encoded, encoded_len, channel, time, channel_len = self.encoder.cache_aware_stream_step(
                processed_signal=signal[None],
                processed_signal_length=torch.tensor([signal.size(1)], device=self._device),
                cache_last_channel=channel,
                cache_last_time=time,
                cache_last_channel_len=channel_len,
                keep_all_outputs=True,
                drop_extra_pre_encoded=drop,
            )
        if channel.size(2) > self._channel_cache_frames:  # NeMo trims only a cache of size > 0: left context 0
            channel, channel_len = channel[:, :, : self._channel_cache_frames], channel_len.clamp(max=0)
        self._caches = (channel, time, channel_len)
        self._pre_encode_cache = signal[:, -self._pre_encode_frames :].clone()
        self._pending = self._pending[:, new_features.size(1) :]
        new_frames = int(encoded_len[0])
        self._frames_out += new_frames
        return encoded[0, :, :new_frames].transpose(0, 1)

    def _concat(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        if not outputs:
            return torch.zeros(0, self.encoder._feat_out, device=self._device, dtype=self._dtype)
        return torch.cat(outputs, dim=0)
