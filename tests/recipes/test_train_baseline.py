"""recipes/train_baseline.py: NeMo's CTC and RNN-T models from the aligner demo config, as a user runs it."""

import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import REPO, TINY_ARCH_OVERRIDES
from nemo_aligner_plugin.demo.baselines import baseline_model_config


def _compose(name: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base=None):
        return compose(config_name=f"baselines/{name}")


@pytest.mark.unit
@pytest.mark.parametrize("name", ["ctc_demo", "rnnt_demo"])
def test_baselines_share_everything_but_the_head_with_the_aligner(name):
    aligner = OmegaConf.load(REPO / "configs" / "aligner_demo.yaml")
    cfg = _compose(name)
    model = baseline_model_config(cfg)
    shared = OmegaConf.to_container(aligner.model, resolve=True)
    for key in ("preprocessor", "spec_augment", "encoder", "optim", "validation_ds", "tokenizer"):
        assert OmegaConf.to_container(model[key]) == shared[key], key
    train_ds = OmegaConf.to_container(model.train_ds)
    silence = train_ds.pop("augmentor")["silence"]  # NeMo's perturbation stands in for the plugin's silence_padding
    assert train_ds == shared["train_ds"]
    padding = shared["silence_padding"]
    assert silence == {
        "prob": padding["prob"],
        "min_start_silence_secs": padding["min_seconds"],
        "max_start_silence_secs": padding["max_seconds"],
        "min_end_silence_secs": padding["min_seconds"],
        "max_end_silence_secs": padding["max_seconds"],
    }
    assert cfg.trainer == aligner.trainer
    assert "aux_ctc" not in model and "concat_utterances" not in model and "silence_padding" not in model
    assert model.decoder._target_ == cfg.head.decoder._target_
    assert "prednet" not in model.decoder or name == "rnnt_demo"  # replaced, not merged into the aligner's


@pytest.mark.unit
def test_unknown_dropped_section_is_named():
    cfg = _compose("ctc_demo")
    cfg.drop_model_sections = ["decoder", "no_such_section"]
    with pytest.raises(ValueError, match="no_such_section"):
        baseline_model_config(cfg)


@pytest.mark.unit
@pytest.mark.parametrize("name,model_class", [("ctc_demo", "EncDecCTCModelBPE"), ("rnnt_demo", "EncDecRNNTBPEModel")])
def test_baseline_recipe_trains_and_restores(tmp_path, tone_manifest, tokenizer_dir, name, model_class):
    overrides = [
        f"model.train_ds.manifest_filepath={tone_manifest}",
        f"model.validation_ds.manifest_filepath={tone_manifest}",
        f"model.tokenizer.dir={tokenizer_dir}",
        f"exp_manager.exp_dir={tmp_path}",
        "exp_manager.create_tensorboard_logger=false",
        "model.train_ds.batch_size=8",
        "model.train_ds.num_workers=0",
        "model.validation_ds.num_workers=0",
        "model.optim.lr=3e-3",
        "model.optim.sched.warmup_steps=5",
        "trainer.max_steps=60",
        "trainer.check_val_every_n_epoch=30",
        "trainer.enable_progress_bar=false",
        *TINY_ARCH_OVERRIDES,
    ]
    proc = subprocess.run(
        [sys.executable, "recipes/train_baseline.py", f"--config-name=baselines/{name}", *overrides],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    summary = json.loads(next(tmp_path.rglob("training_summary.json")).read_text())
    assert summary["model_class"].endswith(model_class) and summary["global_step"] == 60
    # a fresh process restores it through NeMo alone and transcribes the training tones
    script = (
        "import json, sys\n"
        "from nemo.collections.asr.models import ASRModel\n"
        f"m = ASRModel.restore_from({summary['nemo_path']!r}, map_location='cpu')\n"
        f"files = [json.loads(l)['audio_filepath'] for l in open({str(tone_manifest)!r})]\n"
        "out = m.transcribe(files, batch_size=4, verbose=False)\n"
        "print(type(m).__name__, json.dumps([getattr(h, 'text', h) for h in out]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    cls, texts = out.stdout.strip().splitlines()[-1].split(" ", 1)
    assert cls == model_class
    texts = json.loads(texts)
    assert len(texts) == 8
    if name == "ctc_demo":
        import jiwer

        refs = [json.loads(line)["text"] for line in tone_manifest.read_text().splitlines()]
        assert jiwer.wer(refs, texts) < 0.5  # 60 steps on 8 utterances: the baseline really learns
    else:
        # RNN-T needs a few hundred steps before it emits anything on tones; that it learns with our loss is
        # tests/test_rnnt_loss.py (same values and gradients as NeMo's losses)
        assert summary["cpu_rnnt_loss"] == "vectorized"
