"""Messy transcripts: empty, longer than the encoder output, unknown characters, missing or broken fields.

Measured before the checks:
- empty transcript: trains (target = EOS only), finite loss and gradients, also for a batch of empty ones;
- transcript longer than the encoder frames: skipped and counted by AlignerLoss, ``train_skipped_utts`` logged;
- a line without ``text``: both loaders silently train it as an empty transcript;
- a line without ``duration``: Lhotse ``KeyError: 'duration'`` (no file or line); a non-UTF-8 line:
  ``UnicodeDecodeError`` (no file or line); bad JSON: Lhotse ``JSONDecodeError: ... line 1 column 33`` (the line
  number of the string, not of the file), legacy "Failed to parse some lines ... See logs"; ``text: null``:
  legacy ``ValueError: Expected either str or list input`` from the tokenizer.
"""

import json
import math

import pytest
import torch
from fault_helpers import output, read_manifest, write_manifest
from nemo.utils import logging
from reliability_helpers import run_recipe

from conftest import tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel, checks
from nemo_aligner_plugin.loss import AlignerLoss


def onehot_logits(rows: list[list[int]], num_classes: int = 4) -> torch.Tensor:
    """(B, U+1, V+1) logits where the listed class has 3x the probability mass of each other class."""
    logits = torch.zeros(len(rows), max(map(len, rows)), num_classes)
    for b, row in enumerate(rows):
        for u, cls in enumerate(row):
            logits[b, u, cls] = math.log(3.0)  # p(cls) = 3 / (3 + 3) = 1/2
    return logits


@pytest.mark.unit
def test_empty_transcript_target_is_just_eos():
    eos = 3
    loss = AlignerLoss(eos_id=eos, label_smoothing=0.0)
    mixed = loss(
        logits=onehot_logits([[eos, 0, 0], [1, 2, eos]]),
        targets=torch.tensor([[0, 0], [1, 2]]),  # row 0 is empty: padding only
        target_lengths=torch.tensor([0, 2]),
        encoder_lengths=torch.tensor([5, 5]),
    )
    assert mixed.item() == pytest.approx(math.log(2.0))  # 4 valid positions, each -log(1/2)
    assert loss.num_skipped_last == 0
    all_empty = dict(
        logits=onehot_logits([[eos], [eos]]),
        targets=torch.zeros(2, 0, dtype=torch.long),
        target_lengths=torch.tensor([0, 0]),
        encoder_lengths=torch.tensor([1, 3]),  # one frame is enough for EOS
    )
    assert loss(**all_empty).item() == pytest.approx(math.log(2.0))
    # label smoothing with the batch prior: no tokens to count, so the prior falls back to uniform
    smoothed = AlignerLoss(eos_id=eos, label_smoothing=0.1, smoothing_mode="batch_prior")(**all_empty)
    assert smoothed.item() == pytest.approx(0.9 * math.log(2.0) + 0.1 * (3 * math.log(6.0) + math.log(2.0)) / 4)


@pytest.mark.unit
def test_all_empty_batch_trains_through_the_model(tokenizer_dir):
    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model).train()
    audio, audio_len = 0.1 * torch.randn(2, 16000), torch.tensor([16000, 9000])
    encoded, encoded_len = model(input_signal=audio, input_signal_length=audio_len)
    loss = model.compute_loss(encoded, encoded_len, torch.zeros(2, 0, dtype=torch.long), torch.tensor([0, 0]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.unit
def test_unknown_characters_counted_before_training(tmp_path, tone_manifest, tokenizer_dir, monkeypatch):
    from nemo.collections.common.tokenizers import SentencePieceTokenizer

    rows = read_manifest(tone_manifest)
    rows[1]["text"], rows[4]["text"] = "ABC", "abc é"
    manifest = write_manifest(tmp_path / "unk.json", rows)
    tokenizer = SentencePieceTokenizer(str(tokenizer_dir / "tokenizer.model"))
    logged = []
    monkeypatch.setattr(logging, "warning", logged.append)
    cfg = tiny_cfg(tokenizer_dir, model={"train_ds": {"manifest_filepath": str(manifest)}}).model
    warnings = checks.check_dataset_manifests(cfg, keys=("train_ds",), tokenizer=tokenizer)
    assert [str(w) for w in warnings] == [
        f"{manifest}:2: warning: characters the tokenizer maps to <unk>: 'A' 'B' 'C'",
        f"{manifest}:5: warning: characters the tokenizer maps to <unk>: 'é'",
    ]
    assert len(logged) == 1 and "2 of 8 transcripts have characters the tokenizer maps to <unk>" in logged[0]


@pytest.mark.unit
def test_recipe_refuses_a_broken_manifest_naming_file_and_line(tmp_path, tone_manifest, tokenizer_dir):
    rows = read_manifest(tone_manifest)
    del rows[2]["text"]  # silently trained as an empty transcript without the check
    manifest = write_manifest(tmp_path / "broken.json", rows)
    proc = run_recipe(tmp_path / "exp", manifest, tokenizer_dir, "trainer.max_steps=2")
    assert proc.returncode != 0
    assert f"{manifest}:3: missing field 'text'" in proc.stdout + proc.stderr, output(proc)


@pytest.mark.unit
def test_too_long_transcript_skipped_and_logged_by_the_recipe(tmp_path, tone_manifest, tokenizer_dir):
    """Through Lightning steps of the real recipe: the utterance is left out and ``train_skipped_utts`` logged."""
    rows = read_manifest(tone_manifest)
    rows[3]["text"] = " ".join(["abcdefgh"] * 12)  # ~100 tokens for ~1 s of audio (26 encoder frames)
    manifest = write_manifest(tmp_path / "long_text.json", rows)
    record = tmp_path / "run.json"
    proc = run_recipe(
        tmp_path / "exp",
        manifest,
        tokenizer_dir,
        "trainer.max_steps=4",
        "exp_manager.create_checkpoint_callback=false",
        "trainer.check_val_every_n_epoch=10",  # no validation: its loss would count the utterance again
        env={"FAULT_RECORD": str(record)},
    )
    assert proc.returncode == 0, output(proc)
    run = json.loads(record.read_text())
    assert [step["train_skipped_utts"] for step in run["steps"].values()] == [0.0, 1.0, 0.0, 0.0]  # batch 1 = rows 2, 3
    assert all(math.isfinite(step["train_loss"]) for step in run["steps"].values())
    assert run["skipped_utts_total"] == 1, run
    assert "AlignerLoss: skipped 1 training utterance(s)" in proc.stdout + proc.stderr
    summary = json.loads(next((tmp_path / "exp").rglob("training_summary.json")).read_text())
    assert summary["skipped_unalignable_utterances"] == 1
