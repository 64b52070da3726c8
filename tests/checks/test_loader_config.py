"""checks/loader_config.py: mono audio from both training loaders, resampling, trainer settings fixed or refused."""

import fault_helpers
import pytest
import soundfile as sf
import torch
from fault_helpers import write_manifest
from omegaconf import OmegaConf

from nemo_aligner_plugin import AlignerEncoderModel, checks

messy_audio = fault_helpers.messy_audio  # the fixture

PATHS = pytest.mark.parametrize("use_lhotse", [True, False], ids=["lhotse", "legacy"])


@pytest.fixture(scope="module")
def model(trained_nemo):
    return AlignerEncoderModel.restore_from(str(trained_nemo)).eval()


def loaded_signals(model, manifest, use_lhotse, **ds):
    """The (audio, lengths) batches the training loader yields for a manifest."""
    cfg = OmegaConf.create(
        {
            **OmegaConf.to_container(model.cfg.train_ds),
            "manifest_filepath": str(manifest),
            "use_lhotse": use_lhotse,
            "shuffle": False,
            "batch_size": 4,
            "min_duration": 0.0,
            **ds,
        }
    )
    model.setup_training_data(cfg)
    return [(batch[0], batch[1]) for batch in model._train_dl]


@pytest.mark.unit
@PATHS
def test_8k_and_48k_resampled_in_training_loaders(model, messy_audio, tmp_path, use_lhotse):
    rows = [{"audio_filepath": messy_audio[k], "duration": 1.66, "text": "ab"} for k in ("rate8k", "rate48k")]
    [(audio, lengths)] = loaded_signals(model, write_manifest(tmp_path / "rates.json", rows), use_lhotse)
    reference = torch.from_numpy(sf.read(messy_audio["ref"], dtype="float32")[0])
    assert lengths.tolist() == [reference.numel()] * 2
    for signal, tolerance in zip(audio, (0.02, 0.005), strict=True):  # 8 kHz loses the band above 4 kHz
        assert (signal - reference).norm() / reference.norm() < tolerance


@pytest.mark.unit
@PATHS
def test_stereo_reaches_the_training_loaders_as_mono(model, messy_audio, tmp_path, use_lhotse):
    m = messy_audio
    rows = [{"audio_filepath": m[k], "duration": 1.66, "text": "ab"} for k in ("stereo", "stereo_opposite")]
    [(audio, _)] = loaded_signals(model, write_manifest(tmp_path / "stereo.json", rows), use_lhotse)
    reference = torch.from_numpy(sf.read(m["ref"], dtype="float32")[0])
    assert audio.shape == (2, reference.numel())
    assert torch.allclose(audio[0], reference, atol=1e-4) and audio[1].abs().max() < 1e-4  # (a - a) / 2


@pytest.mark.unit
def test_mono_audio_config_per_loader():
    legacy = checks.mono_audio_config(OmegaConf.create({"use_lhotse": False}))
    lhotse = checks.mono_audio_config(OmegaConf.create({"use_lhotse": True, "channel_selector": "average"}))
    picked = checks.mono_audio_config(OmegaConf.create({"use_lhotse": False, "channel_selector": 1}))
    assert (legacy.channel_selector, lhotse.channel_selector, picked.channel_selector) == ("average", None, 1)


@pytest.mark.unit
def test_training_config_fixed_or_refused():
    cfg = OmegaConf.create(
        {
            "trainer": {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "sync_batchnorm": True},
            "model": {"train_ds": {"use_lhotse": True, "manifest_filepath": "t.json", "batch_duration": 60}},
        }
    )
    warnings = checks.check_training_config(cfg)
    assert cfg.trainer.sync_batchnorm is False and cfg.trainer.use_distributed_sampler is False
    assert [w.split(" ")[0] for w in warnings] == ["trainer.sync_batchnorm=true", "model.train_ds.use_lhotse=true"]
    assert checks.check_training_config(cfg) == []  # fixed now
    del cfg.model.train_ds.batch_duration
    with pytest.raises(ValueError, match=r"model.train_ds: use_lhotse=true needs a batch size: set model.train_ds"):
        checks.check_training_config(cfg)


@pytest.mark.unit
def test_skip_nan_grad_said_to_be_ignored():
    cfg = OmegaConf.create({"trainer": {"accelerator": "cpu"}, "model": {"skip_nan_grad": True}})
    [warning] = checks.check_training_config(cfg)
    assert warning.startswith("model.skip_nan_grad=true is ignored: the plugin drops every optimizer step")
    cfg.model.skip_nan_grad = False
    assert checks.check_training_config(cfg) == []
