"""The numpy front end of the ONNX runtime against NeMo: log-mel features, resampling and the audio reader.

B: batch size, F: mel features, T: feature frames.

Tolerances: the numpy features are computed in float64, NeMo's in float32. Against NeMo's module run in float64
they are equal after the cast to float32 (measured 0.0; bound 1e-5 for other BLAS/FFT builds). Against NeMo's float32
output (what the model was trained on) the difference is NeMo's own float32 rounding, exactly the gap between its
float32 and float64 runs: measured 2.3e-5 .. 3.8e-4 max abs (mean 2.4e-6) on normalized features, bound 5e-4. It is
largest in quiet bands next to a loud tone, where the FFT's float32 rounding of the loud bins is a large share of the
band's energy (a pure tone with mag_power=1 and log guard "tiny" reaches 0.8 in empty bands), which is why the other
settings are held to the float64 run.
"""

from __future__ import annotations

import json
import re

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from nemo.collections.asr.modules import AudioToMelSpectrogramPreprocessor
from omegaconf import OmegaConf

from conftest import CONFIGS
from nemo_aligner_plugin.onnx.feature_export import feature_spec
from nemo_aligner_plugin.onnx.features import LogMel, read_audio, resample

SR = 16000
VS_FLOAT32 = 5e-4  # max abs difference to NeMo's float32 features (measured 2.3e-5 .. 3.8e-4)
VS_FLOAT64 = 1e-5  # max abs difference to NeMo's module run in float64 (measured 0.0)
RESAMPLE_REL_RMS = 2e-3  # relative RMS error to librosa's soxr_hq (measured 4.8e-4 .. 7.7e-4)


def config_preprocessor(name: str, **overrides) -> AudioToMelSpectrogramPreprocessor:
    cfg = OmegaConf.load(CONFIGS / name)
    kwargs = OmegaConf.to_container(cfg.model.preprocessor, resolve=True)
    kwargs.pop("_target_")
    return AudioToMelSpectrogramPreprocessor(**{**kwargs, **overrides}).eval()


def tone(seconds: float, freq: float = 440.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def speechless_batch() -> list[np.ndarray]:
    """Random audio (0.3 s), a pure tone (1.7 s), tone plus noise (4 s)."""
    noise = (0.1 * np.random.default_rng(1).standard_normal(int(0.3 * SR))).astype(np.float32)
    return [noise, tone(1.7), tone(4.0, freq=1234.0, noise=0.01)]


def nemo_features(preprocessor, signals: list[np.ndarray], double: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """NeMo's preprocessor on the zero-padded batch (B, F, T), as the model runs it (empty-only batch: 1 sample)."""
    lengths = torch.tensor([s.size for s in signals])
    batch = torch.zeros(len(signals), max(int(lengths.max()), 1), dtype=torch.float64 if double else torch.float32)
    for row, signal in enumerate(signals):
        batch[row, : signal.size] = torch.from_numpy(signal)
    with torch.no_grad():
        if double:
            features, out_lengths = preprocessor.featurizer.double()(batch, lengths)
            preprocessor.featurizer.float()
        else:
            features, out_lengths = preprocessor(input_signal=batch, length=lengths)
    return features.float().numpy(), out_lengths.numpy()


def numpy_logmel(preprocessor) -> LogMel:
    settings, arrays = feature_spec(preprocessor)
    return LogMel(json.loads(json.dumps(settings)), arrays)  # as the runtime reads config.json


@pytest.mark.unit
@pytest.mark.parametrize("config,mels", [("aligner_demo.yaml", 64), ("aligner_conformer_bpe.yaml", 80)])
def test_logmel_matches_nemo_for_the_configs(config, mels):
    preprocessor = config_preprocessor(config)
    signals = speechless_batch()
    features, lengths = numpy_logmel(preprocessor)(signals)
    expected, expected_lengths = nemo_features(preprocessor, signals)
    assert features.shape == expected.shape == (3, mels, 401) and features.dtype == np.float32
    assert lengths.dtype == np.int64 and lengths.tolist() == expected_lengths.tolist() == [30, 170, 400]
    exact = nemo_features(preprocessor, signals, double=True)[0]
    assert np.abs(features - exact).max() < VS_FLOAT64
    assert np.abs(features - expected).max() < min(VS_FLOAT32, np.abs(exact - expected).max() + VS_FLOAT64)
    assert not features[0, :, 30:].any() and not features[1, :, 170:].any()  # pad_value 0 past each row's length


@pytest.mark.unit
@pytest.mark.parametrize(
    "overrides",
    [
        {"pad_to": 16, "pad_value": -3.0, "normalize": "all_features", "log_zero_guard_type": "clamp"},
        {"mag_power": 1.0, "preemph": None, "normalize": "NA", "log_zero_guard_value": "tiny", "n_fft": 1024},
        {"log": False, "normalize": None, "window": "hamming", "window_size": 0.025, "features": 40, "pad_to": 8},
    ],
)
def test_logmel_matches_nemo_for_other_settings(overrides):
    preprocessor = config_preprocessor("aligner_demo.yaml", **overrides)
    signals = speechless_batch()
    features, lengths = numpy_logmel(preprocessor)(signals)
    expected, expected_lengths = nemo_features(preprocessor, signals, double=True)
    assert features.shape == expected.shape and lengths.tolist() == expected_lengths.tolist()
    scale = 1.0 if preprocessor.featurizer.log else np.abs(expected).max()  # linear mels: a relative bound
    assert np.abs(features - expected).max() < VS_FLOAT64 * scale


@pytest.mark.unit
@pytest.mark.parametrize("samples", [[0], [0, 4800], [100, 200, 4800], [200]])
def test_empty_and_one_frame_signals(samples):
    """Empty audio (length 0, all pad_value), shorter than a hop (0 frames), one frame (per_feature std of 1)."""
    preprocessor = config_preprocessor("aligner_demo.yaml", pad_value=-1.0)
    signals = [tone(n / SR, noise=0.1) for n in samples]
    features, lengths = numpy_logmel(preprocessor)(signals)
    expected, expected_lengths = nemo_features(preprocessor, signals)
    assert lengths.tolist() == expected_lengths.tolist() == [n // 160 for n in samples]
    assert features.shape == expected.shape
    np.testing.assert_allclose(features, expected, rtol=0, atol=VS_FLOAT32)


@pytest.mark.unit
def test_logmel_refuses_signals_that_are_not_1d():
    with pytest.raises(ValueError, match=r"1-D signals .*\(4, 2\)"):
        numpy_logmel(config_preprocessor("aligner_demo.yaml"))([np.zeros(3, np.float32), np.zeros((4, 2), np.float32)])


@pytest.mark.unit
@pytest.mark.parametrize(
    "overrides,named",
    [
        ({"frame_splicing": 3}, "preprocessor.frame_splicing=3"),
        ({"exact_pad": True}, "preprocessor.exact_pad=True"),
        ({"normalize": {"fixed_mean": [0.0] * 64, "fixed_std": [1.0] * 64}}, "preprocessor.normalize="),
        ({"log_zero_guard_value": "huge"}, "preprocessor.log_zero_guard_value='huge'"),
    ],
)
def test_unsupported_settings_are_refused_by_name(overrides, named):
    with pytest.raises(ValueError, match="not supported by the ONNX runtime") as err:
        feature_spec(config_preprocessor("aligner_demo.yaml", **overrides))
    assert named in str(err.value)


@pytest.mark.unit
def test_other_preprocessors_are_refused_by_class():
    with pytest.raises(ValueError, match="preprocessor Linear .*AudioToMelSpectrogramPreprocessor only"):
        feature_spec(torch.nn.Linear(2, 2))


@pytest.mark.unit
@pytest.mark.parametrize("orig_sr", [8000, 22050, 44100, 48000])
def test_resample_matches_librosa(orig_sr):
    """Tones plus white noise; the two filters differ only near the lower Nyquist frequency."""
    t = np.arange(int(1.3 * orig_sr)) / orig_sr
    noise = 0.05 * np.random.default_rng(0).standard_normal(t.size)
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t) + noise).astype(np.float32)
    ours, theirs = resample(x, orig_sr, SR), librosa.resample(x, orig_sr=orig_sr, target_sr=SR)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert np.sqrt(np.mean((ours - theirs) ** 2) / np.mean(theirs**2)) < RESAMPLE_REL_RMS


@pytest.mark.unit
@pytest.mark.parametrize("size", [0, 1, 2, 3, 11, 44101])
def test_resample_lengths_are_librosas(size):
    x = np.ones(size, dtype=np.float32)
    assert resample(x, 44100, SR).shape == librosa.resample(x, orig_sr=44100, target_sr=SR).shape
    np.testing.assert_array_equal(resample(x, SR, SR), x)


@pytest.mark.unit
def test_read_audio_averages_channels_then_resamples(tmp_path):
    rate = 44100
    t = np.arange(rate)[:, None] / rate
    noise = 0.05 * np.random.default_rng(3).standard_normal((rate, 2))
    stereo = (0.3 * np.sin(2 * np.pi * np.array([440, 2500]) * t) + noise).astype(np.float32)  # channels differ
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, rate, subtype="FLOAT")
    samples = read_audio(str(path), SR)
    np.testing.assert_array_equal(samples, resample(stereo.mean(axis=1), rate, SR))
    nemo_way = librosa.resample(stereo.mean(axis=1), orig_sr=rate, target_sr=SR)
    assert np.sqrt(np.mean((samples - nemo_way) ** 2) / np.mean(nemo_way**2)) < RESAMPLE_REL_RMS


@pytest.mark.unit
def test_read_audio_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        read_audio(str(missing), SR)
    garbage = tmp_path / "not_audio.wav"
    garbage.write_text("this is not a RIFF file")
    with pytest.raises(ValueError, match=re.escape(f"cannot read audio file {garbage}: ")):
        read_audio(str(garbage), SR)
