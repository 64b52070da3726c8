"""Fuzzed manifests and audio files (issue 26) through the manifest checks, the training entry and ``transcribe()``:
every input gets ``file:line`` problems or passes, a clear error naming the file, or a transcript; no other
exception, and never the unknown-token row ``⁇``.

Cases are hypothesis strategies over mutation operations (tests/fuzz_helpers.py), run from a fixed seed in the
default suite; the slow suite runs 10,000 manifests, 2,000 train manifests and 1,000 audio files from a fresh seed,
printed with the figures (``FUZZ_SEED=<seed>`` reruns one). What they found, each now a problem or an error naming
the file (checks/manifest_lines.py, checks/audio.py): a 400-digit integer duration (``OverflowError`` from
``math.isfinite``), a 5,000-digit number (``ValueError``: Python's int-string limit), arrays nested 5,000 deep
(``RecursionError``), ``/dev/zero`` as the manifest (read without end); a FLAC cut short (``LibsndfileError`` while
scanning samples), one float sample of 1.2e27 (a row of ``⁇``), a 1 Hz header with long-form on (7 hours of audio,
a failed allocation), a 22 MHz header with Lhotse (a 29 GiB resampling filter), G.721 data with Lhotse (an empty
batch: ``max() arg is an empty sequence``); and, fixed outside the checks, a manifest NeMo's dataset read before
the checks did, and a batch of only empty audio (``IndexError`` in NeMo's preemphasis).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fuzz_helpers import (
    AUDIO_CASES,
    BASE_LINES,
    MANIFEST_CASES,
    AudioCase,
    ManifestCase,
    write_audio_case,
    write_manifest_case,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from omegaconf import OmegaConf, open_dict

from conftest import REPO, SAMPLE_RATE, random_sentence, synth_tones
from nemo_aligner_plugin import checks

DEFAULT_SEED = 26  # the default suite's seed (issue 26)
SLOW_SEED = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
FIXTURE = REPO / "tests" / "fixtures" / "compat_83f1566"
UNKNOWN = "\u2047"  # "⁇": sentencepiece's rendering of <unk>


def fuzz(strategy, check: Callable, examples: int, seed: int) -> Counter:
    """Run ``check(case, stats)`` on ``examples`` cases drawn from ``strategy`` with ``seed``; returns the stats."""
    stats: Counter = Counter()
    seen = set()  # hypothesis draws some cases twice (about 8 in 100 here)

    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed)
    @given(case=strategy)
    def run(case):
        seen.add(repr(case))
        check(case, stats)

    try:
        run()
    except BaseException as err:  # name the seed next to hypothesis's falsifying example
        if hasattr(err, "add_note"):  # Python 3.11+
            err.add_note(f"fuzz seed {seed} (rerun the slow suite with FUZZ_SEED={seed})")
        raise
    stats["distinct cases"] = len(seen)
    return stats


def report_figures(what: str, stats: Counter, seed: int, seconds: float) -> None:
    figures = ", ".join(f"{key} {value}" for key, value in sorted(stats.items()))
    print(f"\nfuzz {what}: seed {seed}, {figures}, uncaught 0, {seconds:.1f} s")


# ---------------------------------------------------------------------------------------------- manifests
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """A 12-line manifest of tone utterances that passes every check (half its paths relative), and a folder."""
    out = tmp_path_factory.mktemp("fuzz_corpus")
    (out / "a_directory").mkdir()
    rng = np.random.default_rng(0)
    base = []
    for i in range(BASE_LINES):
        text = random_sentence(rng, 1, 2)
        audio = synth_tones(text, rng)
        sf.write(out / f"utt{i:02d}.wav", audio, SAMPLE_RATE)
        path = f"utt{i:02d}.wav" if i % 2 else str(out / f"utt{i:02d}.wav")
        base.append({"audio_filepath": path, "duration": audio.size / SAMPLE_RATE, "text": text})
    corpus = {"dir": out, "base": base, "directory": out / "a_directory"}
    path, expected = write_manifest_case(ManifestCase("mutated"), base, out / "base.json", out)
    assert expected == set() and checks.validate_manifest(path, audio=True, sample_rate=SAMPLE_RATE) == []
    return corpus


def line_count(path: Path):
    """Lines of a regular file as the checks number them (a last line without newline counts); None otherwise."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def check_manifest_case(case, corpus: dict, stats: Counter) -> None:
    path, must_fail = write_manifest_case(case, corpus["base"], corpus["dir"] / "fuzzed.json", corpus["directory"])
    report = checks.inspect_manifest(path, audio=True)  # any exception fails the test
    lines = line_count(path)
    for problem in report.problems:
        where = f"{path}:{problem.line}: " if problem.line is not None else f"{path}: "
        assert problem.path == str(path) and str(problem).startswith(where), problem
        assert problem.line is None or lines is None or 1 <= problem.line <= lines, (problem, lines)
        assert problem.message.isprintable(), problem
    errors = [p for p in report.problems if p.severity == "error"]
    assert report.num_errors == len(errors) and report.num_warnings == len(report.problems) - len(errors)
    assert must_fail <= {p.line for p in errors}, (must_fail, [str(p) for p in report.problems])
    stats["manifests"] += 1
    stats["refused"] += bool(errors)
    stats["passed"] += not errors
    stats["problems"] += len(report.problems)


@pytest.mark.unit
def test_fuzzed_manifests_get_line_problems_or_pass(corpus):
    stats = fuzz(MANIFEST_CASES, lambda case, s: check_manifest_case(case, corpus, s), 200, DEFAULT_SEED)
    assert stats["manifests"] == 200 and stats["refused"] > 100 and stats["passed"] > 0, stats


@pytest.mark.unit
def test_the_inputs_that_used_to_raise(corpus):
    """Each of these raised (or never returned) before checks/manifest_lines.py; now each is one problem."""
    base = json.dumps(corpus["base"][0])
    path = corpus["dir"] / "used_to_raise.json"
    cases = {
        base.replace('"duration": ', '"duration": 1' + "0" * 400 + ', "was": '): "'duration' must be a number",
        base.replace('"duration": ', '"duration": ' + "9" * 5000 + ', "was": '): "Exceeds the limit (4300 digits)",
        base.replace('"text": ', '"text": ' + "[" * 5000 + "]" * 5000 + ', "was": '): "nested too deeply",
        base.replace('"text": ', '"text": "\\ud800", "was": '): "lone surrogate",
        base.replace('"text": ', '"text": "' + "x" * (1 << 20) + '", "was": '): "line longer than 1048576 bytes",
    }
    for line, message in cases.items():
        path.write_text(line + "\n" + base + "\n")
        problems = [str(p) for p in checks.validate_manifest(path, audio=True)]
        assert len(problems) == 1 and problems[0].startswith(f"{path}:1: ") and message in problems[0], problems
    assert [str(p) for p in checks.validate_manifest("/dev/zero")] == [
        "/dev/zero: not a manifest: a device file, not a regular file"
    ]
    directory = str(corpus["directory"])
    assert [str(p) for p in checks.validate_manifest(directory)] == [
        f"{directory}: cannot open manifest: Is a directory"
    ]


def check_training_entry_case(case, corpus: dict, tokenizer, stats: Counter) -> None:
    """What training runs before it starts: refused (``ManifestError`` naming the file) exactly when the manifest
    has errors, and never another exception."""
    path, _ = write_manifest_case(case, corpus["base"], corpus["dir"] / "train.json", corpus["directory"])
    report = checks.inspect_manifest(path)
    cfg = OmegaConf.create({"train_ds": {"manifest_filepath": str(path)}})
    try:
        checks.check_dataset_manifests(cfg, tokenizer=tokenizer)
    except checks.ManifestError as err:
        assert report.num_errors > 0 and f"{path}" in str(err), str(err)
        stats["refused"] += 1
    else:
        assert report.num_errors == 0, [str(p) for p in report.problems]
        stats["passed"] += 1
    stats["manifests"] += 1


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    from nemo.collections.common.tokenizers import SentencePieceTokenizer

    return SentencePieceTokenizer(str(tokenizer_dir / "tokenizer.model"))


@pytest.mark.unit
def test_fuzzed_train_manifests_refused_up_front(corpus, tokenizer):
    stats = fuzz(
        MANIFEST_CASES, lambda case, s: check_training_entry_case(case, corpus, tokenizer, s), 100, DEFAULT_SEED + 1
    )
    assert stats["manifests"] == 100 and stats["refused"] > 0 and stats["passed"] > 0, stats


@pytest.mark.unit
def test_training_recipe_refuses_a_fuzzed_manifest_before_writing(tmp_path, corpus, tokenizer_dir):
    """The shared training loop (recipes/train_aligner.py) on broken train manifests: ``ManifestError`` naming
    file and line, before any step; no checkpoint and no .nemo written."""
    from conftest import tiny_cfg
    from nemo_aligner_plugin import AlignerEncoderModel
    from nemo_aligner_plugin.integration.training import run_training

    base = [json.dumps(entry) for entry in corpus["base"]]
    broken = {
        "nan_duration": base[:3] + [base[3].replace('"duration": ', '"duration": NaN, "was": ')] + base[4:],
        "cut_line": base[:5] + [base[5][:17]] + base[6:],
        "bom": ["\ufeff" + base[0]] + base[1:],
    }
    for name, lines in broken.items():
        manifest = corpus["dir"] / f"{name}.json"
        manifest.write_text("\n".join(lines) + "\n")
        cfg = tiny_cfg(tokenizer_dir)
        cfg.model.train_ds.manifest_filepath = str(manifest)
        cfg.model.validation_ds.manifest_filepath = None
        cfg.model.test_ds.manifest_filepath = None
        cfg.trainer = {**cfg.trainer, "accelerator": "cpu", "devices": 1, "max_steps": 2, "enable_progress_bar": False}
        cfg.exp_manager = {**cfg.exp_manager, "exp_dir": str(tmp_path / name), "create_tensorboard_logger": False}
        with pytest.raises(checks.ManifestError) as err:
            run_training(
                cfg, lambda trainer, log_dir, model_cfg=cfg.model: AlignerEncoderModel(model_cfg, trainer=trainer)
            )
        line = {"nan_duration": 4, "cut_line": 6, "bom": 1}[name]
        assert f"{manifest}:{line}: " in str(err.value), (name, str(err.value))
        written = [p for p in (tmp_path / name).rglob("*") if p.suffix in (".nemo", ".ckpt")]
        assert written == [], written


# ---------------------------------------------------------------------------------------------- audio files
@pytest.fixture(scope="module")
def tiny_model():
    """The 83f1566 tiny model as a user loads it: the plugin imported (above), then NeMo's ASRModel.restore_from."""
    from nemo.collections.asr.models import ASRModel

    return ASRModel.restore_from(str(FIXTURE / "tiny_aligner_83f1566.nemo"), map_location="cpu").eval()


def check_audio_case(case, longform: bool, use_lhotse: bool, model, folder: Path, samples, stats: Counter) -> None:
    """A fuzzed audio file through the manifest checks (header and samples) and then ``transcribe()`` (plain or
    with long-form on, either loader): refused with an error naming the file, or transcribed without ``⁇``."""
    path = str(write_audio_case(case, samples, folder / "fuzzed"))
    info, problem = checks.audio_problem(path)
    manifest = folder / "fuzzed_audio.json"
    manifest.write_text(json.dumps({"audio_filepath": path, "duration": 1.66, "text": "ab"}) + "\n")
    report = checks.inspect_manifest(manifest, audio=True, samples=True, sample_rate=SAMPLE_RATE)
    assert all(p.line == 1 and str(p).startswith(f"{manifest}:1: ") for p in report.problems), report.problems
    assert problem is None or str(report.problems[0]) == f"{manifest}:1: {problem}", (problem, report.problems)
    stats["audio files"] += 1
    stats["unreadable by the checks"] += problem is not None
    stats["manifest problems"] += len(report.problems)
    with open_dict(model.cfg):
        model.cfg.longform.enabled = longform
    try:
        hyps = model.transcribe([path], batch_size=1, verbose=False, use_lhotse=use_lhotse)
    except (checks.AudioInputError, checks.AudioTooLongError) as err:
        assert path in str(err), str(err)
        stats[f"refused ({type(err).__name__})"] += 1
    else:
        scan = checks.scan_samples(path) if info is not None else None
        assert problem is None and scan is not None and scan.error is None and scan.nonfinite == 0, (problem, scan)
        assert UNKNOWN not in hyps[0].text, (case, hyps[0].text)
        stats["transcribed"] += 1


def fuzz_audio(model, folder: Path, examples: int, seed: int) -> Counter:
    samples = sf.read(FIXTURE / "seen0.wav", dtype="float32")[0]
    cases = st.tuples(AUDIO_CASES, st.booleans(), st.booleans())  # (case, long-form on, Lhotse loader)
    try:
        return fuzz(cases, lambda c, stats: check_audio_case(*c, model, folder, samples, stats), examples, seed)
    finally:
        with open_dict(model.cfg):
            model.cfg.longform.enabled = False


@pytest.mark.unit
def test_the_audio_that_used_to_fail(tmp_path, tiny_model):
    """Found by the audio fuzz before the fixes in checks/audio.py: each is now an error naming the file."""
    samples = sf.read(FIXTURE / "seen0.wav", dtype="float32")[0]
    flac = write_audio_case(AudioCase("flac", ".flac", (("truncate", 1168),)), samples, tmp_path / "cut")
    huge = write_audio_case(AudioCase("float32", ".wav", (("sample", 0, 1.2e27),)), samples, tmp_path / "huge")
    slow = write_audio_case(AudioCase("pcm16", ".wav", (("field", "rate", 1),)), samples, tmp_path / "slow")
    fast = write_audio_case(AudioCase("pcm16", ".wav", (("field", "rate", 22312341),)), samples, tmp_path / "fast")
    expected = {  # path: (the manifest's --samples error, the transcribe() error)
        flac: (f"cannot read the samples of {flac}: Internal psf_fseek() failed. (truncated or corrupt data?)",) * 2,
        huge: (
            f"samples up to 1.2e+27 in {huge}: corrupt data that overflows to inf",
            f"{huge}: samples up to 1.2e+27, which overflow the features to inf (corrupt data)",
        ),
        slow: (f"sample rate 1 Hz in the header of {slow}: outside the 1000-768000 Hz of real recordings ",) * 2,
        fast: (f"sample rate 22312341 Hz in the header of {fast}: outside the 1000-768000 Hz",) * 2,
    }
    for path, (manifest_error, transcribe_error) in expected.items():
        manifest = tmp_path / "one.json"
        manifest.write_text(json.dumps({"audio_filepath": str(path), "duration": 1.66, "text": "ab"}) + "\n")
        problems = checks.validate_manifest(manifest, audio=True, samples=True)
        assert [p.message for p in problems if p.severity == "error"][0].startswith(manifest_error), problems
        with open_dict(tiny_model.cfg):
            tiny_model.cfg.longform.enabled = True  # the 1 Hz header: 7 hours of long-form, a failed allocation
        try:
            with pytest.raises(checks.AudioInputError) as err:  # Lhotse: the 22 MHz header, a 29 GiB filter
                tiny_model.transcribe([str(path)], batch_size=1, verbose=False, use_lhotse=True)
        finally:
            with open_dict(tiny_model.cfg):
                tiny_model.cfg.longform.enabled = False
        assert f"  {transcribe_error}" in str(err.value), str(err.value)
    with pytest.raises(checks.NonFiniteAudioError, match=r"array 0 \(3 samples\): samples up to 1\.2e\+27"):
        tiny_model.transcribe([np.array([0.1, 1.2e27, 0.0], np.float32)], verbose=False)


@pytest.mark.unit
def test_a_file_lhotse_cannot_seek_in(tmp_path, tiny_model):
    """A WAV of G.721 data (the fuzz made one by changing the format code): libsndfile reads it but cannot seek in
    it, so Lhotse drops it and a batch of only it fails in collation (``max() arg is an empty sequence``)."""
    samples = sf.read(FIXTURE / "seen0.wav", dtype="float32")[0]
    path = str(write_audio_case(AudioCase("pcm16", ".wav", (("field", "format", 64),)), samples, tmp_path / "g721"))
    why = f"Lhotse cannot read {path}: libsndfile cannot seek in its G721_32 data; convert it to PCM"
    manifest = tmp_path / "one.json"
    manifest.write_text(json.dumps({"audio_filepath": path, "duration": 6.645, "text": "ab"}) + "\n")
    assert [p.message for p in checks.validate_manifest(manifest, audio=True)][0].startswith(why)
    with pytest.raises(checks.AudioInputError, match=why):
        checks.check_transcribe_inputs(tiny_model, [path], use_lhotse=True)
    checks.check_transcribe_inputs(tiny_model, [path], use_lhotse=False)  # the legacy loader reads it
    assert len(tiny_model.transcribe([path], verbose=False, use_lhotse=False)) == 1


@pytest.mark.unit
def test_transcribe_with_lhotse_names_a_file_it_cannot_seek_in(tmp_path, tiny_model):
    samples = sf.read(FIXTURE / "seen0.wav", dtype="float32")[0]
    path = str(write_audio_case(AudioCase("pcm16", ".wav", (("field", "format", 64),)), samples, tmp_path / "g721"))
    with pytest.raises(checks.AudioInputError, match=f"Lhotse cannot read {path}"):
        tiny_model.transcribe([path], verbose=False, use_lhotse=True)


@pytest.mark.unit
@pytest.mark.parametrize("use_lhotse", [False, True], ids=["legacy", "lhotse"])
def test_a_zero_length_file_alone_transcribes_to_empty(tmp_path, tiny_model, use_lhotse):
    """A valid WAV with no samples: "" (as in a batch with other files, and as docs/troubleshooting.md says)."""
    path = tmp_path / "no_samples.wav"
    sf.write(path, np.zeros(0, np.float32), SAMPLE_RATE)
    hyps = tiny_model.transcribe([str(path)], batch_size=1, verbose=False, use_lhotse=use_lhotse)
    assert [h.text for h in hyps] == [""]


@pytest.mark.unit
def test_fuzzed_audio_files_named_or_transcribed(tmp_path, tiny_model):
    stats = fuzz_audio(tiny_model, tmp_path, 50, DEFAULT_SEED)
    assert stats["audio files"] == 50 and stats["transcribed"] > 0 and stats["unreadable by the checks"] > 0, stats


# ---------------------------------------------------------------------------------------------- slow suite
@pytest.mark.slow
def test_fuzz_10000_manifests(corpus, tokenizer):
    start = time.perf_counter()
    stats = fuzz(MANIFEST_CASES, lambda case, s: check_manifest_case(case, corpus, s), 10_000, SLOW_SEED)
    report_figures("manifests", stats, SLOW_SEED, time.perf_counter() - start)
    start = time.perf_counter()
    train = fuzz(
        MANIFEST_CASES, lambda case, s: check_training_entry_case(case, corpus, tokenizer, s), 2_000, SLOW_SEED
    )
    report_figures("train manifests", train, SLOW_SEED, time.perf_counter() - start)
    assert stats["manifests"] == 10_000 and train["manifests"] == 2_000


@pytest.mark.slow
def test_fuzz_1000_audio_files(tmp_path, tiny_model):
    start = time.perf_counter()
    stats = fuzz_audio(tiny_model, tmp_path, 1_000, SLOW_SEED)
    report_figures("audio files", stats, SLOW_SEED, time.perf_counter() - start)
    assert stats["audio files"] == 1_000
