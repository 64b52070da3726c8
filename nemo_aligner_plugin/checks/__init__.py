"""Input and run-time checks for large, messy corpora: clear errors that name the file, line and field.

Manifests and audio (``manifest.py``, ``audio.py``, CLI in ``cli.py``)
- ``validate_manifest(path)``: every problem of a NeMo manifest as ``file:line: message``. Also a CLI:
  ``python -m nemo_aligner_plugin.checks train.json [--audio] [--samples] [--tokenizer DIR]`` (exit 1 on errors).
- ``check_dataset_manifests(model_cfg)``: the same for the ``*_ds`` manifests before training starts.

Transcription inputs (``transcribe_inputs.py``)
- ``check_transcribe_inputs(model, audio)``: missing/empty/unreadable files, NaN/inf samples, too-long audio
  (errors) and audio below the model's sample rate (a warning), before NeMo reads anything.

Loaders and trainer (``loader_config.py``)
- ``mono_audio_config`` / ``downmix_lhotse_dataset``: multi-channel audio reaches the model as mono (B, T).
- ``check_training_config(cfg)``: trainer/data settings that otherwise fail deep in torch, Lightning or NeMo.

Training steps (``nonfinite.py``)
- ``NonFiniteGuard``: drops an optimizer step whose loss or gradients are NaN/inf on any rank, and counts it.

Checkpoints (``archive.py``)
- ``atomic_output(path)``: a ``.nemo`` is written to a temporary name and moved into place, so a kill or a full
  disk never leaves a half-written file behind; ``check_nemo_archive(path)`` names what is wrong with one.
- ``plugin_version_stamp(saved)``: the plugin version recorded in a model config, with a warning on a mismatch.
"""

from nemo_aligner_plugin.checks.archive import atomic_output, check_nemo_archive, plugin_version_stamp
from nemo_aligner_plugin.checks.audio import audio_problem, resolve_audio_path, scan_samples
from nemo_aligner_plugin.checks.cli import main
from nemo_aligner_plugin.checks.loader_config import check_training_config, downmix_lhotse_dataset, mono_audio_config
from nemo_aligner_plugin.checks.manifest import (
    REQUIRED_FIELDS,
    ManifestError,
    ManifestReport,
    Problem,
    check_dataset_manifests,
    inspect_manifest,
    manifest_paths,
    validate_manifest,
)
from nemo_aligner_plugin.checks.nonfinite import NonFiniteGuard
from nemo_aligner_plugin.checks.transcribe_inputs import (
    AudioInputError,
    AudioTooLongError,
    NonFiniteAudioError,
    check_audio_files,
    check_finite_samples,
    check_transcribe_duration,
    check_transcribe_inputs,
    transcribe_limit_seconds,
    warn_low_sample_rate,
)

__all__ = [
    "REQUIRED_FIELDS",
    "AudioInputError",
    "AudioTooLongError",
    "ManifestError",
    "ManifestReport",
    "NonFiniteAudioError",
    "NonFiniteGuard",
    "Problem",
    "atomic_output",
    "audio_problem",
    "check_audio_files",
    "check_dataset_manifests",
    "check_finite_samples",
    "check_nemo_archive",
    "check_training_config",
    "check_transcribe_duration",
    "check_transcribe_inputs",
    "downmix_lhotse_dataset",
    "inspect_manifest",
    "main",
    "manifest_paths",
    "mono_audio_config",
    "plugin_version_stamp",
    "resolve_audio_path",
    "scan_samples",
    "transcribe_limit_seconds",
    "validate_manifest",
    "warn_low_sample_rate",
]
