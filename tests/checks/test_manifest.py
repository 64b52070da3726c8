"""checks/manifest.py: every problem of a messy manifest as a file:line message, the dataset manifests of a config."""

import json

import fault_helpers
import pytest
import soundfile as sf
from fault_helpers import write_manifest
from omegaconf import OmegaConf

from nemo_aligner_plugin import checks

messy_audio = fault_helpers.messy_audio  # the fixture


def entry(path, text="ab", duration=None):
    return {"audio_filepath": path, "duration": duration or sf.info(path).duration, "text": text}


@pytest.mark.unit
def test_every_line_problem_named_with_its_line(tmp_path, messy_audio):
    good = json.dumps(entry(messy_audio["ref"]))
    lines = [
        good,
        json.dumps({"audio_filepath": messy_audio["ref"], "duration": 1.0}),  # 2: no text
        json.dumps({"audio_filepath": messy_audio["ref"], "text": "ab"}),  # 3: no duration
        '{"audio_filepath": "a.wav", "dur',  # 4: cut-off line
        good.replace('"ab"', '"caf\udce9"').encode("utf-8", "surrogateescape").decode("latin-1"),  # 5: latin-1
        "",  # 6: blank
        json.dumps({**entry(messy_audio["ref"]), "text": None}),  # 7
        json.dumps({**entry(messy_audio["ref"]), "duration": "1.5"}),  # 8
        json.dumps({**entry(messy_audio["ref"]), "duration": -1}),  # 9
        json.dumps([messy_audio["ref"], 1.0, "ab"]),  # 10
        json.dumps({"duration": 1.0}),  # 11
    ]
    manifest = tmp_path / "messy.json"
    manifest.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    problems = [str(p) for p in checks.validate_manifest(manifest)]
    assert problems == [
        f"{manifest}:2: missing field 'text'",
        f"{manifest}:3: missing field 'duration'",
        f"{manifest}:4: not valid JSON: Unterminated string starting at (column 29)",
        f"{manifest}:5: not UTF-8: byte 0xe9 at column {lines[4].index('caf') + 4}; re-encode the file",
        f"{manifest}:6: empty line: NeMo's Lhotse reader fails on it (the legacy reader skips it); delete it",
        f"{manifest}:7: 'text' must be a string, got None",
        f"{manifest}:8: 'duration' must be a number of seconds, got '1.5'",
        f"{manifest}:9: 'duration' must be > 0, got -1",
        f"{manifest}:10: a manifest line must be a JSON object, got list",
        f"{manifest}:11: missing fields 'audio_filepath', 'text'",
    ]


@pytest.mark.unit
def test_audio_problems_with_audio_option(tmp_path, messy_audio):
    m = messy_audio
    manifest = write_manifest(
        tmp_path / "audio.json",
        [
            entry(m["ref"]),
            {"audio_filepath": m["missing"], "duration": 1.0, "text": "ab"},
            {"audio_filepath": m["empty"], "duration": 1.0, "text": "ab"},
            {"audio_filepath": m["corrupt"], "duration": 1.0, "text": "ab"},
            {"audio_filepath": m["zero_length"], "duration": 1.0, "text": "ab"},
            {"audio_filepath": m["truncated"], "duration": 1.66, "text": "ab"},
            entry(m["rate8k"]),
            entry(m["stereo"]),
            {"audio_filepath": "ref.wav", "duration": 1.0, "text": "ab"},  # relative to the manifest's folder
        ],
    )
    (tmp_path / "ref.wav").write_bytes(open(m["ref"], "rb").read())
    problems = [str(p) for p in checks.validate_manifest(manifest, audio=True, sample_rate=16000)]
    assert problems[0] == f"{manifest}:2: audio file not found: {m['missing']}"
    assert problems[1] == f"{manifest}:3: audio file is empty (0 bytes): {m['empty']}"
    assert problems[2].startswith(f"{manifest}:4: cannot read audio file {m['corrupt']}: ")
    assert "No 'data' chunk marker" in problems[2]
    assert problems[3:] == [
        f"{manifest}:5: warning: audio file has no samples: {m['zero_length']}",
        f"{manifest}:6: duration 1.66 s but {m['truncated']} holds 0.60 s: NeMo's legacy loader reads `duration` "
        "seconds, Lhotse the whole file; fix the duration",
        f"{manifest}:7: warning: 8000 Hz audio, resampled to 16000 Hz when loaded; it has nothing above 4000 Hz",
        f"{manifest}:8: warning: 2 channels: averaged to mono when loaded (channel_selector picks one)",
        f"{manifest}:9: duration 1.00 s but {tmp_path / 'ref.wav'} holds {sf.info(m['ref']).duration:.2f} s: NeMo's "
        "legacy loader reads `duration` seconds, Lhotse the whole file; fix the duration",
    ]


@pytest.mark.unit
def test_sample_scan_finds_nan_and_silence(tmp_path, messy_audio):
    manifest = write_manifest(
        tmp_path / "samples.json",
        [entry(messy_audio["nan"]), entry(messy_audio["silence"], text=""), entry(messy_audio["ref"])],
    )
    report = checks.inspect_manifest(manifest, audio=True, samples=True)
    assert [str(p) for p in report.problems] == [
        f"{manifest}:1: NaN/inf samples in {messy_audio['nan']}: they turn the loss into NaN; re-export the file",
        f"{manifest}:2: warning: all samples are zero (silence): {messy_audio['silence']}",
    ]
    assert (report.lines, report.num_errors, report.num_warnings, report.empty_texts) == (3, 1, 1, 1)


@pytest.mark.unit
def test_characters_the_tokenizer_does_not_know(tmp_path, tokenizer_dir, messy_audio):
    from nemo.collections.common.tokenizers import SentencePieceTokenizer

    tokenizer = SentencePieceTokenizer(str(tokenizer_dir / "tokenizer.model"))
    texts = ["abc def", "ABC déf", "", "abc Ωx"]
    manifest = write_manifest(tmp_path / "unk.json", [entry(messy_audio["ref"], t) for t in texts])
    report = checks.inspect_manifest(manifest, tokenizer=tokenizer)
    assert [str(p) for p in report.problems] == [
        f"{manifest}:2: warning: characters the tokenizer maps to <unk>: 'A' 'B' 'C' 'é'",
        f"{manifest}:4: warning: characters the tokenizer maps to <unk>: 'x' 'Ω'",
    ]
    assert (report.unknown_char_lines, report.empty_texts, report.num_errors) == (2, 1, 0)


@pytest.mark.unit
def test_dataset_manifests_checked_before_training(tmp_path, messy_audio):
    good = write_manifest(tmp_path / "good.json", [entry(messy_audio["ref"])])
    bad = write_manifest(tmp_path / "bad.json", [entry(messy_audio["ref"]), {"audio_filepath": "x.wav"}])
    model_cfg = OmegaConf.create(
        {"train_ds": {"manifest_filepath": f"{good},{bad}"}, "validation_ds": {"manifest_filepath": None}}
    )
    with pytest.raises(checks.ManifestError) as err:
        checks.check_dataset_manifests(model_cfg)
    assert f"{bad}:2: missing fields 'duration', 'text'" in str(err.value)
    assert str(good) not in str(err.value)
    model_cfg.train_ds.manifest_filepath = [str(good), str(tmp_path / "nowhere.json")]
    with pytest.raises(checks.ManifestError, match="nowhere.json: model.train_ds.manifest_filepath: file not found"):
        checks.check_dataset_manifests(model_cfg)
    model_cfg.train_ds.manifest_filepath = str(good)
    assert checks.check_dataset_manifests(model_cfg) == []
    model_cfg.train_ds = {"manifest_filepath": "audio_OP_0..7_CL_.json", "is_tarred": True}  # not read
    assert checks.check_dataset_manifests(model_cfg) == []
