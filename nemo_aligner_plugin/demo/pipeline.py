"""The demo's stages: corpus -> training -> transcription -> WER -> alignment plot -> report (``make demo``).

Each stage is a plain recipe run in a subprocess with our interpreter (its output streams to the terminal) or a
function of this package; ``run_demo`` chains them. Everything runs on the CPU with no downloads: speech is
synthesized by espeak-ng (installed through apt when missing and running as root).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from nemo_aligner_plugin.demo.evaluate import PAD_SECONDS, evaluate, length_ratios
from nemo_aligner_plugin.demo.report import write_report

__all__ = ["SYSTEMS", "run_demo", "train", "train_aligner_after_ctc", "schedule_steps", "evaluate_system"]

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
SMOKE_CORPUS = (
    "--num-train 40 --num-dev 8 --num-test 8 --num-test-long 4 --num-dev-long 2 --num-nonspeech 4 --vocab-size 64"
).split()
SMOKE_OVERRIDES = [
    "model.encoder.n_layers=2",
    "model.aux_ctc.layer=0",
    "model.encoder.d_model=48",
    "model.encoder.subsampling_conv_channels=16",
    "model.model_defaults.pred_hidden=32",
    "model.model_defaults.joint_hidden=32",
    "model.train_ds.batch_size=8",
    "trainer.max_steps=6",
    "trainer.check_val_every_n_epoch=1",
    "model.optim.sched.warmup_steps=2",
]
# system -> (training recipe, config name under configs/); the baselines inherit the aligner demo config
SYSTEMS = {
    "aligner": ("train_aligner.py", "aligner_demo"),
    "ctc": ("train_baseline.py", "baselines/ctc_demo"),
    "rnnt": ("train_baseline.py", "baselines/rnnt_demo"),
    "chunkwise": ("train_aligner.py", "chunkwise_demo"),  # the streaming demo (demo/streaming_pipeline.py)
    "rnnt_streaming": ("train_baseline.py", "baselines/rnnt_streaming_demo"),
}


def log(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_espeak() -> None:
    """espeak-ng on PATH, installed with apt-get when missing and we are root; else a clear exit."""
    if shutil.which("espeak-ng"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("espeak-ng is missing: install it with `sudo apt-get install espeak-ng` and rerun.")
    log("installing espeak-ng with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "espeak-ng"], check=True, env=env)


def run_recipe(args: list[str]) -> None:
    """Run ``recipes/<args[0]>`` with our interpreter; its output streams to the terminal (progress bars included)."""
    subprocess.run([sys.executable, str(RECIPES / args[0]), *args[1:]], check=True, cwd=REPO)


def train(corpus: Path, exp_dir: Path, overrides: list[str], system: str = "aligner") -> dict:
    """Train ``system`` on the corpus; returns its training_summary.json."""
    script, config = SYSTEMS[system]
    run_recipe(
        [
            script,
            "--config-path=../configs",
            f"--config-name={config}",
            f"model.train_ds.manifest_filepath={corpus / 'train_manifest.json'}",
            f"model.validation_ds.manifest_filepath={corpus / 'dev_manifest.json'}",
            f"model.tokenizer.dir={corpus / 'tokenizer'}",
            f"exp_manager.exp_dir={exp_dir}",
            *overrides,
        ]
    )
    summaries = sorted(exp_dir.rglob("training_summary.json"), key=lambda p: p.stat().st_mtime)
    if not summaries:
        sys.exit(f"training finished without a training_summary.json under {exp_dir}")
    return json.loads(summaries[-1].read_text())


def schedule_steps(overrides: list[str]) -> int:
    """trainer.max_steps of the demo run: the last override, else configs/aligner_demo.yaml's."""
    for item in reversed(overrides):
        if item.startswith("trainer.max_steps="):
            return int(item.split("=", 1)[1])
    from omegaconf import OmegaConf

    return int(OmegaConf.load(REPO / "configs" / "aligner_demo.yaml").trainer.max_steps)


def train_aligner_after_ctc(corpus: Path, run_dir: Path, overrides: list[str], ctc_steps: int) -> dict:
    """Split the step budget: NeMo CTC (same encoder) for ``ctc_steps``, then the aligner from its encoder."""
    total = schedule_steps(overrides)
    if not 0 < ctc_steps < total:
        sys.exit(f"--ctc-warmup-steps {ctc_steps}: must be between 1 and the schedule's {total - 1} steps")
    log(f"stage 2a/4: CTC warm-up, {ctc_steps} of {total} steps -> {run_dir / 'ctc_warmup'}")
    ctc = train(corpus, run_dir / "ctc_warmup", [*overrides, f"trainer.max_steps={ctc_steps}"], "ctc")
    log(f"stage 2b/4: aligner from the CTC encoder, {total - ctc_steps} steps -> {run_dir / 'aligner'}")
    summary = train(
        corpus,
        run_dir / "aligner",
        [
            *overrides,
            f"trainer.max_steps={total - ctc_steps}",
            f"+init_from_nemo_model.encoder.path={ctc['nemo_path']}",
            "+init_from_nemo_model.encoder.include=[preprocessor,encoder]",
        ],
    )
    return {**summary, "ctc_warmup": {k: ctc[k] for k in ("nemo_path", "global_step", "minutes")}}


def evaluate_system(
    model_path: Path, corpus: Path, out_dir: Path, longform: Optional[dict] = None
) -> tuple[dict, dict]:
    """Restore the model once; per-split scores (demo/evaluate.py) and the decoding time of one test batch."""
    from nemo_aligner_plugin.demo.timing import decode_ms_per_batch
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, load_model

    model = load_model(TranscriptionConfig(model_path=str(model_path)))
    splits = evaluate(model, corpus, out_dir, longform)
    return splits, decode_ms_per_batch(model, corpus / "test_manifest.json")


def plot(model_path: Path, corpus: Path, out_dir: Path) -> Optional[dict]:
    """Per-layer attention maps for one test utterance (recipes/plot_alignment.py; skipped without matplotlib)."""
    if importlib.util.find_spec("matplotlib") is None:
        log('alignment plot skipped: matplotlib is not installed (pip install -e ".[plot]")')
        return None
    first = json.loads((corpus / "test_manifest.json").read_text().splitlines()[0])
    png = out_dir / "alignment.png"
    run_recipe(
        ["plot_alignment.py", "--model", str(model_path), "--audio", first["audio_filepath"]]
        + ["--text", first["text"], "--out", str(png)]
    )
    scores = png.with_suffix(".json")
    return {"png": str(png), **(json.loads(scores.read_text()) if scores.exists() else {})}


def run_demo(
    work: Path,
    systems: list[str],
    given: dict[str, Path],
    seed: int = 0,
    smoke: bool = False,
    ctc_warmup_steps: int = 0,
    longform: Optional[dict] = None,
    overrides: Optional[list[str]] = None,
) -> Path:
    """Every stage for ``systems`` (given .nemo files are evaluated, the others trained); returns report.md.

    Everything a run writes (corpus, training runs, predictions, report) lands under ``work``, also for a given
    model: its folder is only read.
    """
    from nemo_aligner_plugin.demo.corpus import current_corpus_info

    start = time.perf_counter()
    corpus = work / ("corpus_smoke" if smoke else "corpus")
    if len(given) < len(systems) or current_corpus_info(corpus) is None:
        ensure_espeak()
        log(f"stage 1/4: corpus -> {corpus}")
        run_recipe(["make_demo_corpus.py", "--out", str(corpus), "--seed", str(seed)] + (SMOKE_CORPUS if smoke else []))

    run_dir = work / "runs" / time.strftime("%Y-%m-%d_%H-%M-%S")
    overrides = [f"seed={seed}"] + (SMOKE_OVERRIDES if smoke else []) + (overrides or [])
    results = {}
    for system in systems:
        if system in given:
            model_path = given[system]
            summary_file = model_path.parent / "training_summary.json"
            summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
            out_dir = run_dir / system
            log(f"{system}: evaluating the given model {model_path} -> {out_dir}")
        else:
            if system == "aligner" and ctc_warmup_steps:
                summary = train_aligner_after_ctc(corpus, run_dir, overrides, ctc_warmup_steps)
            else:
                log(f"stage 2/4: training {system} (configs/{SYSTEMS[system][1]}.yaml) -> {run_dir / system}")
                summary = train(corpus, run_dir / system, overrides, system)
            model_path = Path(summary["nemo_path"])
            out_dir = model_path.parent
        log(
            f"stage 3/4: {system}: transcribing dev, test (unseen voices and sentences), test_long (~2x longer), "
            f"test_long_nopause (the same without pauses), test_long_sentences (its sentences alone), test_padded "
            f"(test with {PAD_SECONDS} s of silence around), nonspeech (no speech: the words it invents)"
        )
        splits, decode = evaluate_system(model_path, corpus, out_dir, longform if system == "aligner" else None)
        results[system] = {"model": str(model_path), "training": summary, "splits": splits, "decode": decode}

    aligner = results["aligner"]
    out_dir = run_dir if "aligner" in given else Path(aligner["model"]).parent
    log("stage 4/4: alignment plot")
    report = {
        "model": aligner["model"],
        "training": aligner["training"],
        "splits": aligner["splits"],
        "alignment": plot(Path(aligner["model"]), corpus, out_dir),
        "longform_options": longform or {},
        "length_ratios": length_ratios(aligner["splits"]),
        "systems": results if len(results) > 1 else None,
        "total_minutes": (time.perf_counter() - start) / 60,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_report(out_dir, report)
