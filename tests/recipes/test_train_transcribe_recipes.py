"""The hydra training recipe and the transcription recipe, run as a user runs them."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, TINY_ARCH_OVERRIDES

TINY_OVERRIDES = [
    *TINY_ARCH_OVERRIDES,
    "model.optim.lr=3e-3",
    "model.optim.weight_decay=0.0",
    "~model.optim.sched",  # constant LR (NeMo cannot take sched=null)
    "model.train_ds.batch_size=8",
    "model.train_ds.num_workers=0",
    "model.validation_ds.num_workers=0",
    "model.test_ds.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.max_epochs=-1",
    "trainer.log_every_n_steps=5",
    "trainer.check_val_every_n_epoch=20",
]


def run(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


def terminal_lines(proc: subprocess.CompletedProcess) -> int:
    """Lines a terminal shows (a progress bar redrawn with carriage returns is one line)."""
    return len([line for line in (proc.stdout + proc.stderr).split("\n") if line.strip()])


@pytest.mark.unit
def test_train_then_transcribe_recipes(tmp_path, tone_manifest, tokenizer_dir):
    run(
        [
            "recipes/train_aligner.py",
            "--config-path=../configs",
            "--config-name=aligner_conformer_bpe",
            f"model.train_ds.manifest_filepath={tone_manifest}",
            f"model.validation_ds.manifest_filepath={tone_manifest}",
            f"model.test_ds.manifest_filepath={tone_manifest}",
            f"model.tokenizer.dir={tokenizer_dir}",
            f"exp_manager.exp_dir={tmp_path / 'exp'}",
            "exp_manager.create_tensorboard_logger=false",
            "trainer.max_steps=60",
            *TINY_OVERRIDES,
        ]
    )
    final = list((tmp_path / "exp").rglob("AlignerEncoder-Conformer-BPE.nemo"))
    assert final, "training recipe wrote no .nemo"

    predictions = tmp_path / "preds.json"
    proc = run(
        [
            "recipes/transcribe_aligner.py",
            f"model_path={final[0]}",
            f"dataset_manifest={tone_manifest}",
            f"output_filename={predictions}",
            "batch_size=4",
        ]
    )
    assert terminal_lines(proc) <= 3, proc.stdout + proc.stderr  # a progress line per batch (2) + the summary
    assert f"wrote {len(tone_manifest.read_text().splitlines())} predictions to {predictions}: WER" in proc.stdout
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    references = [json.loads(line) for line in tone_manifest.read_text().splitlines()]
    assert [line["text"] for line in lines] == [r["text"] for r in references]
    metrics = json.loads(predictions.with_name("preds.json.metrics.json").read_text())
    assert metrics["num_utterances"] == len(references)
    assert metrics["wer"] <= 0.25, metrics  # 60 steps on 8 utterances: the recipe really trains


@pytest.mark.unit
def test_transcribe_recipe_reports_bad_input_clearly(tmp_path, trained_nemo):
    bad = tmp_path / "bad_manifest.json"
    bad.write_text('{"audio_filepath": "a.wav", "text": "x"}\n{not json\n')
    proc = subprocess.run(
        [sys.executable, "recipes/transcribe_aligner.py", f"model_path={trained_nemo}", f"dataset_manifest={bad}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 2
    assert f"{bad}:2: not valid JSON" in proc.stdout + proc.stderr


def joined_manifest(tmp_path, tone_manifest):
    """A manifest with one file: three tone utterances joined with 0.5 s pauses, and the joined text."""
    import numpy as np
    import soundfile as sf

    entries = [json.loads(line) for line in tone_manifest.read_text().splitlines()]
    audio = [sf.read(e["audio_filepath"], dtype="float32")[0] for e in entries]
    pause = np.zeros(8000, dtype=np.float32)
    joined = tmp_path / "joined.wav"
    sf.write(joined, np.concatenate([audio[0], pause, audio[1], pause, audio[2]]), 16000)
    manifest = tmp_path / "long.json"
    manifest.write_text(json.dumps({"audio_filepath": str(joined), "text": " ".join(e["text"] for e in entries[:3])}))
    return manifest, joined


LONGFORM = {"enabled": True, "chunk_seconds": 2.0, "boundary": "pause", "pause_search_seconds": 1.0}


@pytest.mark.unit
def test_transcribe_longform_override_chunks_long_audio(tmp_path, trained_nemo, tone_manifest):
    """longform={enabled, boundary, ...} sends audio past chunk_seconds through long-form, as transcribe_longform."""
    import soundfile as sf

    from nemo_aligner_plugin import AlignerEncoderModel
    from nemo_aligner_plugin.longform import LongformConfig, transcribe_longform
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, load_model
    from nemo_aligner_plugin.transcribe_cli import run as transcribe

    manifest, joined = joined_manifest(tmp_path, tone_manifest)
    cfg = TranscriptionConfig(
        model_path=str(trained_nemo), dataset_manifest=str(manifest), output_filename=str(tmp_path / "p.json"),
        longform=dict(LONGFORM),
    )  # fmt: skip
    transcribe(cfg)
    predicted = json.loads((tmp_path / "p.json").read_text())["pred_text"]

    model = AlignerEncoderModel.restore_from(str(trained_nemo)).eval()
    config = LongformConfig(chunk_seconds=2.0, boundary="pause", pause_search_seconds=1.0)
    (expected,) = transcribe_longform(model, [str(joined)], config)
    assert predicted == expected.text and len(expected.y_sequence) > 0
    (whole,) = transcribe_longform(model, [str(joined)], LongformConfig(chunk_seconds=60.0))
    # the recipe did not fall back to plain decoding: the tiny model reads the 3-utterance audio in one piece otherwise
    assert sf.info(str(joined)).duration > 2.0 and expected.text != whole.text

    cfg.longform = {"enabled": True, "boundary": "silence"}
    with pytest.raises(ValueError, match="boundary"):
        load_model(cfg)


@pytest.mark.unit
def test_transcribe_cli_takes_decoding_and_longform_keys_without_plus_and_writes_nbest(
    tmp_path, trained_nemo, tone_manifest
):
    """decoding.strategy=beam, decoding.beam.return_best_hypothesis=false and longform.* as the README writes them
    (no hydra ``+``): the best text is pred_text, the N-best texts a list (best first), long audio goes long-form."""
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig
    from nemo_aligner_plugin.transcribe_cli import run as transcribe

    long_manifest, _ = joined_manifest(tmp_path, tone_manifest)
    manifest = tmp_path / "mixed.json"
    manifest.write_text(tone_manifest.read_text() + long_manifest.read_text() + "\n")
    predictions = tmp_path / "nbest.json"
    proc = run(
        [
            "recipes/transcribe_aligner.py",
            f"model_path={trained_nemo}",
            f"dataset_manifest={manifest}",
            f"output_filename={predictions}",
            "batch_size=4",
            "decoding.strategy=beam",
            "decoding.beam.return_best_hypothesis=false",
            *(f"longform.{key}={str(value).lower()}" for key, value in LONGFORM.items()),
        ]
    )
    assert terminal_lines(proc) <= 4, proc.stdout + proc.stderr  # a progress line per batch (3) + the summary
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    short, long = lines[:-1], lines[-1]
    assert [line["pred_text"] for line in short] == [line["text"] for line in short]  # the overfit model
    for line in short:  # N-best, best first, up to the beam width
        assert line["pred_text_nbest"][0] == line["pred_text"] and 1 <= len(line["pred_text_nbest"]) <= 6
    # the long file went through long-form with beam search, as the library does with the same sections
    expected = transcribe(
        TranscriptionConfig(
            model_path=str(trained_nemo), dataset_manifest=str(long_manifest),
            output_filename=str(tmp_path / "lib.json"), decoding={"strategy": "beam"}, longform=dict(LONGFORM),
        )
    )  # fmt: skip
    assert long["pred_text"] == json.loads((tmp_path / "lib.json").read_text())["pred_text"]
    assert expected["num_utterances"] == 1


@pytest.mark.unit
def test_read_manifest_names_the_line_without_a_required_field(tmp_path):
    from nemo_aligner_plugin.manifests import read_manifest

    manifest = tmp_path / "bare_manifest.json"
    manifest.write_text('{"audio_filepath": "a.wav", "text": "x"}\n{"audio_filepath": "b.wav"}\n')
    with pytest.raises(ValueError, match=r"bare_manifest\.json:2: missing field 'text'"):
        read_manifest(manifest, required=("audio_filepath", "text"))
    assert read_manifest(manifest)[1]["audio_filepath"] == str(tmp_path / "b.wav")  # relative to the manifest
