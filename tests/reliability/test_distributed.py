"""Two DDP processes on CPU (gloo) through the training recipe give what one process gives on the same global
batches, with the legacy loader and with Lhotse; a NaN on one rank drops the step on both.

Measured before the checks:
- the shipped config (``trainer.sync_batchnorm: true``) fails at DDP setup on CPU with torch's
  ``ValueError: SyncBatchNorm layers only work with GPU modules``;
- Lhotse without ``trainer.use_distributed_sampler=false``: Lightning's ``TypeError: You seem to have
  configured a sampler in your DataLoader which does not provide __len__``; without a batch size: NeMo's
  "Batch size is not configured" (not saying which dataset);
- Lightning always shuffles training data under DDP (DistributedSampler, seed ``PL_GLOBAL_SEED``), whatever
  ``model.train_ds.shuffle`` says, so the one-process reference reads the manifest in that order;
- with those settled, DDP matches one process to float rounding (below).

Exact comparison needs what makes the per-rank computation add up to the global one: SGD (Adam turns the
float noise in gradients that are zero in theory, e.g. attention key biases, into full-size steps),
``reduction: mean_utterance`` with equal utterance counts per rank, ``smoothing_mode: uniform`` (the batch prior
is per rank), LayerNorm in the conv module (BatchNorm statistics are per rank on CPU), equal-length audio (no
padding differences), and no dropout / dither / SpecAugment / concatenation.
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from fault_helpers import output, read_manifest, write_manifest
from reliability_helpers import run_recipe

DDP = ["trainer.devices=2", "trainer.strategy=ddp"]  # trainer.sync_batchnorm stays true: checks fix it
EXACT = [
    "~model.optim.sched",
    "model.optim.name=sgd",
    "~model.optim.betas",
    "model.optim.lr=0.05",
    "model.loss.reduction=mean_utterance",
    "model.loss.smoothing_mode=uniform",
    "model.encoder.conv_norm_type=layer_norm",
    "trainer.max_steps=4",
    "trainer.check_val_every_n_epoch=100",
    "exp_manager.create_checkpoint_callback=false",
]


@pytest.fixture(scope="module")
def equal_length_manifest(tmp_path_factory, tone_manifest):
    """The 8 tone utterances padded with silence to one length."""
    out = tmp_path_factory.mktemp("equal")
    rows = read_manifest(tone_manifest)
    audio = [sf.read(r["audio_filepath"], dtype="float32")[0] for r in rows]
    length = max(a.size for a in audio)
    for i, (row, samples) in enumerate(zip(rows, audio, strict=True)):
        row["audio_filepath"] = str(out / f"eq{i}.wav")
        row["duration"] = length / 16000
        sf.write(row["audio_filepath"], np.pad(samples, (0, length - samples.size)), 16000)
    return write_manifest(out / "equal.json", rows)


def distributed_sampler_order(manifest, path, epochs: int):
    """The manifest in the order Lightning's DistributedSampler (shuffle, seed 0) deals it out, epoch by epoch:
    global step k of 2 ranks x 2 utterances = lines 4k..4k+3 of this file."""
    rows = read_manifest(manifest)
    ordered = []
    for epoch in range(epochs):
        generator = torch.Generator().manual_seed(epoch)  # DistributedSampler: seed + epoch
        ordered += [rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()]
    return write_manifest(path, ordered)


def train(tmp_path, name, manifest, tokenizer_dir, *overrides, env=None):
    record = tmp_path / f"{name}.json"
    proc = run_recipe(
        tmp_path / name, manifest, tokenizer_dir, *EXACT, *overrides, env={**(env or {}), "FAULT_RECORD": str(record)}
    )
    assert proc.returncode == 0, output(proc)
    if record.exists():
        return [(json.loads(record.read_text()), torch.load(record.with_suffix(".pt")))]
    ranks = sorted(tmp_path.glob(f"{name}.rank*.json"))
    return [(json.loads(r.read_text()), torch.load(r.with_suffix(".pt"))) for r in ranks]


def assert_same_training(single, ranks):
    (one, one_weights), [(r0, w0), (r1, w1)] = single[0], ranks
    assert (r0["world_size"], r0["global_step"]) == (2, one["global_step"])
    for step, expected in one["steps"].items():
        a, b = r0["steps"][step], r1["steps"][step]
        assert sorted(a["token_lens"] + b["token_lens"]) == sorted(expected["token_lens"])  # same global batch
        assert (a["loss"] + b["loss"]) / 2 == pytest.approx(expected["loss"], rel=1e-5)
    assert torch.equal(w0, w1)  # the ranks stay in sync
    assert torch.allclose(w0, one_weights, rtol=0, atol=1e-6), (w0 - one_weights).abs().max()


@pytest.mark.slow
def test_ddp_legacy_loader_matches_one_process(tmp_path, equal_length_manifest, tokenizer_dir):
    ordered = distributed_sampler_order(equal_length_manifest, tmp_path / "ordered.json", epochs=2)
    single = train(tmp_path, "single", ordered, tokenizer_dir, "model.train_ds.batch_size=4")
    ranks = train(tmp_path, "ddp", equal_length_manifest, tokenizer_dir, *DDP)
    assert_same_training(single, ranks)


@pytest.mark.slow
def test_ddp_lhotse_loader_matches_one_process(tmp_path, equal_length_manifest, tokenizer_dir):
    """Lhotse deals whole batches round-robin to the ranks: step k = batches 2k (rank 0) and 2k+1 (rank 1)."""
    lhotse = ["model.train_ds.use_lhotse=true"]  # use_distributed_sampler=false: set by the checks
    single = train(tmp_path, "single", equal_length_manifest, tokenizer_dir, *lhotse, "model.train_ds.batch_size=4")
    ranks = train(tmp_path, "ddp", equal_length_manifest, tokenizer_dir, *lhotse, *DDP)
    assert_same_training(single, ranks)


@pytest.mark.slow
def test_nan_on_one_rank_drops_the_step_on_both(tmp_path, equal_length_manifest, tokenizer_dir):
    env = {"FAULT_NAN_AT_STEPS": "1", "FAULT_NAN_RANK": "1"}
    [(r0, w0), (r1, w1)] = train(tmp_path, "ddp", equal_length_manifest, tokenizer_dir, *DDP, env=env)
    assert np.isfinite(r0["steps"]["1"]["loss"]) and np.isnan(r1["steps"]["1"]["loss"])  # NaN on rank 1 only
    assert r0["nonfinite_steps"] == r1["nonfinite_steps"] == 1
    assert [s["train_nonfinite_steps"] for s in r0["steps"].values()] == [0.0, 1.0, 1.0, 1.0]
    assert torch.isfinite(w0).all() and torch.equal(w0, w1)


@pytest.mark.slow
def test_ddp_with_nonspeech_rows_keeps_the_ranks_in_sync(tmp_path, equal_length_manifest, tokenizer_dir):
    """Each rank replaces its own rows (seeded by seed, step and rank); gradients still average to one update."""
    nonspeech = ["model.nonspeech.fraction=0.5", "model.nonspeech.min_seconds=0.2"]
    [(r0, w0), (r1, w1)] = train(tmp_path, "ddp", equal_length_manifest, tokenizer_dir, *nonspeech, *DDP)
    assert r0["global_step"] == r1["global_step"] == 4
    assert all(np.isfinite(s["loss"]) for r in (r0, r1) for s in r["steps"].values())
    assert torch.isfinite(w0).all() and torch.equal(w0, w1)
