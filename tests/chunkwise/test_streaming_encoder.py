"""Streaming features and encoder: any split of a stream gives NeMo's offline output, with bounded state.

Small random models built straight from NeMo's AudioToMelSpectrogramPreprocessor and ConformerEncoder; the
references are their offline forward passes over the whole input.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nemo.collections.asr.modules.audio_preprocessing import AudioToMelSpectrogramPreprocessor
from nemo.collections.asr.modules.conformer_encoder import ConformerEncoder

from nemo_aligner_plugin.chunkwise.encoder_stream import EncoderStream
from nemo_aligner_plugin.chunkwise.features import StreamingFeatures

pytestmark = pytest.mark.unit

SAMPLE_RATE = 16000
FEATURES = 40
FEATURE_TOL = 1e-5
ENCODER_TOL = 1e-4
# (chunk C, left chunks, conv norm, subsampling, factor): the layouts the chunkwise configs use, plus edge cases.
ENCODER_LAYOUTS = {
    "C4_L2_layernorm": (4, 2, "layer_norm", "striding", 4),
    "C2_L3_batchnorm": (2, 3, "batch_norm", "striding", 4),
    "C3_L0_layernorm": (3, 0, "layer_norm", "striding", 4),  # no left context: NeMo's untrimmed cache
    "C1_L4_dwstriding8": (1, 4, "layer_norm", "dw_striding", 8),
}
EXACT_PAD = {"exact_pad": True, "window_stride": None, "n_window_stride": 128}  # NeMo: exact_pad needs an even hop
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def make_preprocessor(**overrides) -> AudioToMelSpectrogramPreprocessor:
    args = {"sample_rate": SAMPLE_RATE, "normalize": "NA", "dither": 0.0, "features": FEATURES, **overrides}
    return AudioToMelSpectrogramPreprocessor(**args).eval()


def make_encoder(chunk: int, left_chunks: int, norm: str = "layer_norm", subsampling="striding", factor=4, **overrides):
    args = {
        "feat_in": FEATURES,
        "n_layers": 2,
        "d_model": 64,
        "n_heads": 4,
        "subsampling": subsampling,
        "subsampling_factor": factor,
        "causal_downsampling": True,
        "att_context_style": "chunked_limited",
        "att_context_size": [chunk * left_chunks, chunk - 1],
        "conv_context_size": "causal",
        "conv_kernel_size": 9,
        "conv_norm_type": norm,
        **overrides,
    }
    torch.manual_seed(chunk * 10 + left_chunks)
    encoder = ConformerEncoder(**args)
    for module in encoder.modules():  # batch norm statistics far from (0, 1), so eval-mode normalisation matters
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return encoder.eval()


@pytest.fixture(scope="module")
def preprocessor():
    return make_preprocessor()


@pytest.fixture(scope="module", params=list(ENCODER_LAYOUTS))
def encoder(request):
    return make_encoder(*ENCODER_LAYOUTS[request.param])


def audio_of(num_samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(num_samples)).astype(np.float32)


def pieces(length: int, sizes: list[int]):
    """(start, stop) of consecutive pieces cycling through ``sizes`` (zeros allowed) until ``length`` is covered."""
    start = 0
    for size in itertools.cycle(sizes):
        if start >= length and size > 0:
            return
        yield start, min(length, start + size)
        start += size


def offline_features(preprocessor, audio: np.ndarray) -> torch.Tensor:
    if audio.size == 0:
        return torch.zeros(preprocessor.featurizer.nfilt, 0)
    features, length = preprocessor(input_signal=torch.from_numpy(audio)[None], length=torch.tensor([audio.size]))
    return features[0, :, : int(length[0])]


def offline_encoder(encoder, features: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        encoded, length = encoder(audio_signal=features[None], length=torch.tensor([features.size(1)]))
    return encoded[0, :, : int(length[0])].T


def stream_features(preprocessor, audio: np.ndarray, sizes: list[int]) -> torch.Tensor:
    stream = StreamingFeatures(preprocessor)
    outputs = [stream.push(audio[start:stop]) for start, stop in pieces(audio.size, sizes)]
    return torch.cat([*outputs, stream.flush()], dim=1)


def stream_encoder(encoder, features: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    stream = EncoderStream(encoder)
    outputs = [stream.push(features[:, start:stop]) for start, stop in pieces(features.size(1), sizes)]
    assert all(out.size(0) % stream.chunk_frames == 0 for out in outputs), "push must emit whole chunks"
    return torch.cat([*outputs, stream.flush()], dim=0)


def assert_close(got: torch.Tensor, want: torch.Tensor, tol: float) -> None:
    assert got.shape == want.shape
    if want.numel():
        assert (got - want).abs().max().item() < tol


@pytest.mark.parametrize("num_samples", [0, 1, 159, 160, 511, 8037])
@pytest.mark.parametrize("sizes", [[1], [7], [0, 5, 160, 0], [400, 1], [SAMPLE_RATE]])
def test_features_equal_offline_for_fixed_splits(preprocessor, num_samples, sizes):
    audio = audio_of(num_samples)
    assert_close(stream_features(preprocessor, audio, sizes), offline_features(preprocessor, audio), FEATURE_TOL)


@SETTINGS
@given(num_samples=st.integers(0, 12000), sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=6))
def test_features_equal_offline_for_any_split(preprocessor, num_samples, sizes):
    if not any(sizes):
        sizes = [*sizes, 1]
    audio = audio_of(num_samples, seed=num_samples)
    assert_close(stream_features(preprocessor, audio, sizes), offline_features(preprocessor, audio), FEATURE_TOL)


@pytest.mark.parametrize("sizes", [[1], [37, 1, 300], [5000]])
@pytest.mark.parametrize(
    "overrides",
    [
        {"window_size": 0.032, "features": 80},  # the repo's configs: window = n_fft
        {"log_zero_guard_type": "clamp", **EXACT_PAD},  # NeMo's mask zeroes the last (n_fft - hop) // 2 samples
    ],
)
def test_features_other_layouts_equal_offline(sizes, overrides):
    preprocessor = make_preprocessor(**overrides)
    for num_samples in (130, 700, 5000):  # exact_pad: offline NeMo fails below one hop (its STFT needs n_fft)
        audio = audio_of(num_samples, seed=3)
        want = offline_features(preprocessor, audio)
        assert_close(stream_features(preprocessor, audio, sizes), want, FEATURE_TOL)


@pytest.mark.parametrize("exact_pad", [False, True])
def test_features_emit_frames_as_soon_as_they_are_final(exact_pad):
    stream = StreamingFeatures(make_preprocessor(**(EXACT_PAD if exact_pad else {})))
    for frames in (1, 2, 10):
        needed = stream.samples_for_frames(frames)
        assert stream.final_frames(needed) == frames and stream.final_frames(needed - 1) == frames - 1
    audio = audio_of(4000)
    assert stream.push(audio[: stream.samples_for_frames(10)]).shape == (FEATURES, 10)


def test_encoder_equal_offline_for_fixed_splits(encoder):
    stream = EncoderStream(encoder)
    one, two = stream.feat_frames_for_chunks(1), stream.feat_frames_for_chunks(2)
    for num_frames in sorted({1, 2, 5, one - 1, one, one + 1, two, two + 3, 101}):
        features = torch.randn(FEATURES, max(1, num_frames))
        want = offline_encoder(encoder, features)
        for sizes in ([1], [3], [0, stream.chunk_feat_frames], [1000]):
            assert_close(stream_encoder(encoder, features, sizes), want, ENCODER_TOL)


@SETTINGS
@given(num_frames=st.integers(1, 120), sizes=st.lists(st.integers(0, 40), min_size=1, max_size=6))
def test_encoder_equal_offline_for_any_split(encoder, num_frames, sizes):
    if not any(sizes):
        sizes = [*sizes, 1]
    features = torch.randn(FEATURES, num_frames, generator=torch.Generator().manual_seed(num_frames))
    assert_close(stream_encoder(encoder, features, sizes), offline_encoder(encoder, features), ENCODER_TOL)


@pytest.mark.parametrize("seconds", [0.05, 0.3, 1.0, 2.37])
def test_audio_to_encoder_frames_equal_offline(preprocessor, seconds):
    """Samples -> StreamingFeatures -> EncoderStream, 0.05 s being shorter than one chunk."""
    encoder = make_encoder(*ENCODER_LAYOUTS["C4_L2_layernorm"])
    audio = audio_of(int(seconds * SAMPLE_RATE), seed=7)
    features, encoded = StreamingFeatures(preprocessor), EncoderStream(encoder)
    outputs = [encoded.push(features.push(audio[start:stop])) for start, stop in pieces(audio.size, [997, 1, 3000])]
    outputs += [encoded.push(features.flush()), encoded.flush()]
    want = offline_encoder(encoder, offline_features(preprocessor, audio))
    assert_close(torch.cat(outputs), want, ENCODER_TOL)


def test_chunk_needs_are_exact(preprocessor):
    """Exactly the samples ``samples_for_frames(feat_frames_for_chunks(k))`` release k chunks; one fewer, k - 1."""
    encoder = make_encoder(*ENCODER_LAYOUTS["C4_L2_layernorm"])
    probe = EncoderStream(encoder)
    assert probe.chunk_frames == 4 and probe.feat_frames_for_chunks(1) == 13 and probe.chunk_feat_frames == 16
    audio = audio_of(SAMPLE_RATE)
    for chunks in (1, 2, 3):
        needed = StreamingFeatures(preprocessor).samples_for_frames(probe.feat_frames_for_chunks(chunks))
        for num_samples, want_chunks in ((needed, chunks), (needed - 1, chunks - 1)):
            features, encoded = StreamingFeatures(preprocessor), EncoderStream(encoder)
            out = encoded.push(features.push(audio[:num_samples]))
            assert out.size(0) == want_chunks * probe.chunk_frames


def test_state_is_bounded_in_stream_length(preprocessor):
    """Caches: the same sizes after 10 s and after 60 s. Input buffers: the same peak over 60 s as over 10 s."""
    encoder = make_encoder(*ENCODER_LAYOUTS["C4_L2_layernorm"])
    features, encoded = StreamingFeatures(preprocessor), EncoderStream(encoder)
    piece = audio_of(SAMPLE_RATE // 2)
    shapes, peaks, peak = {}, {}, {}
    for half_seconds in range(1, 121):
        encoded.push(features.push(piece))
        state = {**features.state_tensors(), **encoded.state_tensors()}
        for name, tensor in state.items():
            peak[name] = max(peak.get(name, 0), tensor.numel())
        if half_seconds in (20, 120):
            shapes[half_seconds] = {name: tuple(tensor.shape) for name, tensor in state.items()}
            peaks[half_seconds] = dict(peak)
    buffers = ("tail_samples", "pending_features")
    assert {k: v for k, v in shapes[20].items() if k not in buffers} == {
        k: v for k, v in shapes[120].items() if k not in buffers
    }
    assert peaks[20] == peaks[120]
    assert shapes[120]["cache_last_channel"][2] == encoder.att_context_size[0]
    assert peaks[120]["pending_features"] < FEATURES * encoded.chunk_feat_frames


def test_push_after_flush_is_refused(preprocessor):
    features, encoded = StreamingFeatures(preprocessor), EncoderStream(make_encoder(2, 1))
    features.flush(), encoded.flush()
    with pytest.raises(RuntimeError, match="after flush"):
        features.push(np.zeros(10, np.float32))
    with pytest.raises(RuntimeError, match="after flush"):
        encoded.push(torch.zeros(FEATURES, 4))


@pytest.mark.parametrize("normalize", ["per_feature", "all_features"])
def test_whole_utterance_normalisation_is_refused(normalize):
    with pytest.raises(ValueError, match="whole utterance"):
        StreamingFeatures(make_preprocessor(normalize=normalize))


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match=r"\.eval\(\)"):
        StreamingFeatures(make_preprocessor(dither=1e-5).train())
    with pytest.raises(ValueError, match=r"\.eval\(\)"):
        EncoderStream(make_encoder(2, 1).train())


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"att_context_style": "regular"}, "att_context_style"),
        ({"att_context_size": [-1, 3]}, "att_context_size"),
        ({"conv_context_size": None}, "conv_context_size"),
        ({"causal_downsampling": False}, "causal_downsampling"),
        ({"subsampling": "striding_conv1d"}, "subsampling"),
        ({"self_attention_model": "abs_pos"}, "self_attention_model"),
    ],
)
def test_non_streaming_encoder_is_refused(overrides, key):
    with pytest.raises(ValueError, match=f"encoder.{key}"):
        EncoderStream(make_encoder(4, 1, **overrides))
