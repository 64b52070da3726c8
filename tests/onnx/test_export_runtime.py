"""model.export(dir) and the torch-free runtime: same tokens as PyTorch greedy, no torch needed, clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, SAMPLE_RATE, synth_tones, tiny_cfg, write_tone_corpus

pytestmark = pytest.mark.unit

# Run in a child process: importing torch, nemo or lightning raises there, as on a machine without them.
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "nemo", "lightning", "pytorch_lightning"):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def model(trained_nemo):
    from nemo_aligner_plugin import AlignerEncoderModel

    return AlignerEncoderModel.restore_from(str(trained_nemo), map_location="cpu").eval()


@pytest.fixture(scope="module")
def folders(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return {"fp32": model.export(str(root / "fp32")), "int8": model.export(str(root / "int8"), quantize="int8")}


@pytest.fixture(scope="module")
def wavs(tmp_path_factory, tone_texts):
    """The training utterances (which the tiny model reads), varied in length, plus silence-padded copies."""
    out = tmp_path_factory.mktemp("wavs")
    manifest = write_tone_corpus(out, tone_texts[:8])
    files = [json.loads(line)["audio_filepath"] for line in manifest.read_text().splitlines()]
    for i, path in enumerate(files[:3]):
        audio, _ = sf.read(path, dtype="float32")
        padded = np.concatenate([np.zeros(4000 * (i + 1), np.float32), audio, np.zeros(3000, np.float32)])
        sf.write(out / f"padded{i}.wav", padded, SAMPLE_RATE)
        files.append(str(out / f"padded{i}.wav"))
    return files


def torch_greedy(model, files, batch_size):
    hyps = model.transcribe(files, batch_size=batch_size, verbose=False)
    return [[int(t) for t in h.y_sequence] for h in hyps], [h.text for h in hyps]


def test_fp32_tokens_equal_pytorch_greedy_batched(model, folders, wavs):
    from nemo_aligner_plugin.onnx import AlignerOnnx

    runtime = AlignerOnnx(folders["fp32"], num_threads=1)
    for batch_size in (1, 4):
        tokens, texts = torch_greedy(model, wavs, batch_size)
        results = runtime.transcribe(wavs, batch_size=batch_size)
        assert [r.tokens for r in results] == tokens
        assert [r.text for r in results] == texts
        assert all(r.frames == list(range(len(r.tokens))) for r in results)  # token i on frame i
    assert runtime.timings["encoder"] > 0 and runtime.timings["decoder"] > 0


def test_arrays_resampled_files_and_empty_input(folders, wavs, tmp_path):
    from nemo_aligner_plugin.onnx import AlignerOnnx

    runtime = AlignerOnnx(folders["fp32"], num_threads=1)
    audio, _ = sf.read(wavs[0], dtype="float32")
    stereo_44k = tmp_path / "stereo44k.wav"
    from nemo_aligner_plugin.onnx.features import resample

    up = resample(audio, SAMPLE_RATE, 44100)
    sf.write(stereo_44k, np.stack([up, up], axis=1), 44100)
    reference = runtime.transcribe(wavs[0]).pop().text
    assert reference
    results = runtime.transcribe([audio, str(stereo_44k), np.zeros(0, np.float32)])
    assert [r.text for r in results] == [reference, reference, ""]


def test_int8_folder_loads_and_transcribes(model, folders, wavs):
    from nemo_aligner_plugin.onnx import AlignerOnnx

    runtime = AlignerOnnx(folders["int8"], num_threads=1)
    assert runtime.config["quantization"] == "int8"
    import onnx

    for name in ("encoder.onnx", "decoder_joint.onnx"):
        ops = {node.op_type for node in onnx.load(str(Path(folders["int8"]) / name)).graph.node}
        assert ops & {"DynamicQuantizeMatMul", "MatMulInteger", "DynamicQuantizeLSTM"}, (name, ops)
    _, texts = torch_greedy(model, wavs, 4)
    results = runtime.transcribe(wavs, batch_size=4)
    same = sum(r.text == t for r, t in zip(results, texts, strict=True))
    assert same >= len(texts) - 2, [r.text for r in results]


def test_runtime_and_cli_work_where_torch_and_nemo_cannot_be_imported(folders, wavs, model):
    script = BLOCKER + (
        "import json, sys\n"
        "from nemo_aligner_plugin.onnx import AlignerOnnx\n"
        "results = AlignerOnnx(sys.argv[1], num_threads=1).transcribe(sys.argv[2:], batch_size=4)\n"
        "assert not any(m.split('.')[0] in ('torch', 'nemo') for m in sys.modules)\n"
        "print(json.dumps([r.tokens for r in results]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(folders["fp32"]), *wavs], capture_output=True, text=True, cwd=REPO
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == torch_greedy(model, wavs, 4)[0]

    cli = BLOCKER + (
        "import runpy, sys\nsys.argv = ['x'] + sys.argv[1:]\n"
        "runpy.run_module('nemo_aligner_plugin.onnx', run_name='__main__')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", cli, str(folders["fp32"]), wavs[0], "--json"], capture_output=True, text=True, cwd=REPO
    )
    assert run.returncode == 0, run.stderr
    line = json.loads(run.stdout)
    assert line["audio"] == wavs[0] and line["text"] == torch_greedy(model, wavs[:1], 1)[1][0]


def test_long_audio_is_read_in_chunks_cut_at_pauses(folders, wavs, tmp_path):
    """A file longer than the folder's route_above_seconds: cut where speech resumes after each pause (the
    every_pause boundary), each chunk read as it would be alone, each token placed on its frame in the file."""
    from nemo_aligner_plugin.onnx import AlignerOnnx

    folder = tmp_path / "short_chunks"
    shutil.copytree(folders["fp32"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["longform"].update(route_above_seconds=2.0, boundary="every_pause", size_frames=75, search_frames=25)
    (folder / "config.json").write_text(json.dumps(config))
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    pieces = [sf.read(path, dtype="float32")[0] for path in wavs[:8]]
    long_audio = np.concatenate([p for piece in pieces for p in (piece, gap)])

    runtime = AlignerOnnx(folder, num_threads=1)
    cuts = runtime._chunks(long_audio)
    assert len(cuts) == 8 and cuts[0][0] == 0 and cuts[-1][1] == long_audio.size
    for _, end in cuts[:-1]:  # in the pause, less than 0.1 s before speech resumes
        assert not long_audio[end - 160 : end].any() and long_audio[end : end + SAMPLE_RATE // 10].any()
    whole = runtime.transcribe(long_audio)[0]
    alone = runtime.transcribe([long_audio[start:end] for start, end in cuts])
    assert whole.tokens == [t for chunk in alone for t in chunk.tokens] and whole.tokens
    frames_per_sample = 1 / (runtime.frame_seconds * SAMPLE_RATE)
    offsets = [round(start * frames_per_sample) for start, _ in cuts]
    expected = [offset + f for offset, chunk in zip(offsets, alone, strict=True) for f in chunk.frames]
    assert whole.frames == expected


def test_plan_chunks_boundaries():
    from nemo_aligner_plugin.onnx.chunks import plan_chunks

    factor, hop = 4, 160
    features = np.ones((8, 400))  # 400 feature frames = 100 encoder frames = 4 s
    features[:, 150:180] = -3.0  # a 0.3 s pause; speech resumes at feature frame 180 (encoder frame 45)
    samples = np.zeros(400 * hop, np.float32)
    section = {"size_frames": 60, "search_frames": 30, "width_frames": 5, "min_frames": 25, "lead_feat_frames": 0}
    every = plan_chunks(samples, features, {**section, "boundary": "every_pause"}, factor, hop)
    assert every[0] == (0, 45 * factor * hop) and every[-1][1] == samples.size
    fixed = plan_chunks(samples, features, {**section, "boundary": "fixed"}, factor, hop)
    assert fixed == [(0, 60 * factor * hop), (60 * factor * hop, samples.size)]
    pause = plan_chunks(samples, features, {**section, "boundary": "pause"}, factor, hop)
    assert pause[0] == (0, 45 * factor * hop)  # the end of the quietest stretch within the chunk's last 30 frames


def test_bad_folders_name_the_file(folders, tmp_path):
    import onnx

    from nemo_aligner_plugin.onnx import AlignerOnnx

    def copy(name):
        target = tmp_path / name
        shutil.copytree(folders["fp32"], target)
        return target

    missing = copy("missing")
    (missing / "tokenizer.model").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        AlignerOnnx(missing)

    newer = copy("newer")
    config = json.loads((newer / "config.json").read_text())
    config["format_version"] += 1
    (newer / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json.*newer than this runtime reads"):
        AlignerOnnx(newer)

    opset = copy("opset")
    graph = onnx.load(str(opset / "encoder.onnx"))
    for entry in graph.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 99
    onnx.save(graph, str(opset / "encoder.onnx"))
    with pytest.raises(ValueError, match=r"encoder\.onnx: onnxruntime .* cannot load it"):
        AlignerOnnx(opset)

    mixed = copy("mixed")
    shutil.copy(Path(folders["int8"]) / "encoder.onnx", mixed / "encoder.onnx")
    with pytest.raises(ValueError, match=r"encoder\.onnx: quantization 'int8' in the file"):
        AlignerOnnx(mixed)

    garbled = copy("garbled")
    (garbled / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
        AlignerOnnx(garbled)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        AlignerOnnx(tmp_path / "nowhere")


def test_bad_audio_names_the_input(folders):
    from nemo_aligner_plugin.onnx import AlignerOnnx

    runtime = AlignerOnnx(folders["fp32"], num_threads=1)
    bad = np.ones(SAMPLE_RATE, np.float32)
    bad[10] = np.nan
    with pytest.raises(ValueError, match=r"audio\[1\]: audio has NaN"):
        runtime.transcribe([np.zeros(100, np.float32), bad])
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        runtime.transcribe(["nope.wav"])


def test_export_leaves_the_model_trainable_and_nemo_file_export_works(model, tmp_path, tone_manifest):
    import torch

    from tests.conftest import manifest_batch

    batch, _ = manifest_batch(model, tone_manifest)
    audio, audio_lens, tokens, token_lens = batch

    def loss():
        model.eval()
        with torch.no_grad():
            encoded, encoded_len = model(input_signal=audio, input_signal_length=audio_lens)
            return float(model.compute_loss(encoded, encoded_len, tokens, token_lens))

    before = loss()
    model.export(str(tmp_path / "again"))
    assert loss() == pytest.approx(before, rel=1e-6)  # the decoder adds its start token again
    assert all(p.requires_grad for p in model.parameters())
    model.export(str(tmp_path / "model.onnx"))  # NeMo's convention: one file per subnet
    assert {p.name for p in tmp_path.glob("*.onnx")} == {"encoder-model.onnx", "decoder_joint-model.onnx"}


def test_export_refuses_what_the_runtime_cannot_run(tokenizer_dir, tmp_path):
    from nemo_aligner_plugin import AlignerEncoderModel

    nonar = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"aligner_type": "nonar"}).model)
    with pytest.raises(ValueError, match="aligner_type='nonar'"):
        nonar.export(str(tmp_path / "nonar"))
    with pytest.raises(ValueError, match="quantize"):
        nonar.export(str(tmp_path / "x.onnx"), quantize="int8")


def test_silence_in_a_batch_does_not_disturb_the_other_rows(folders, wavs):
    from nemo_aligner_plugin.onnx import AlignerOnnx

    runtime = AlignerOnnx(folders["fp32"], num_threads=1)
    alone = runtime.transcribe(wavs[:2], batch_size=1)
    rng = np.random.default_rng(0)
    mixed = runtime.transcribe([np.zeros(SAMPLE_RATE, np.float32), wavs[0], synth_tones("ab", rng), wavs[1]])
    assert [mixed[1].text, mixed[3].text] == [r.text for r in alone]


def test_cli_manifest_writes_pred_text_and_wer(folders, wavs, model, tmp_path, capsys):
    import jiwer

    from nemo_aligner_plugin.onnx.__main__ import main, word_errors

    _, texts = torch_greedy(model, wavs[:3], 4)
    manifest = tmp_path / "m.json"
    refs = [texts[0], texts[1] + " extra", "x"]
    lines = [{"audio_filepath": Path(w).name, "text": r} for w, r in zip(wavs[:3], refs, strict=True)]
    for w in wavs[:3]:
        shutil.copy(w, tmp_path / Path(w).name)  # relative paths resolve against the manifest's folder
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main([str(folders["fp32"]), "--manifest", str(manifest), "--output", str(tmp_path / "p.json")]) == 0
    preds = [json.loads(line)["pred_text"] for line in (tmp_path / "p.json").read_text().splitlines()]
    assert preds == texts
    expected = 100 * jiwer.wer(refs, texts)
    assert f"WER {expected:.2f}%" in capsys.readouterr().err
    for ref, hyp, errors in [("a b c", "a x c d", 2), ("", "a", 1), ("a b", "", 2), ("the cat sat", "cat the sat", 2)]:
        assert word_errors(ref, hyp) == errors


def test_reverse_audio_models_read_reversed_audio(folders, wavs, tmp_path, tokenizer_dir):
    """config.json's reverse_audio (the paper's reverse-alignment experiment) reverses each input, as the model's
    forward does; the exporter records the model's flag."""
    from nemo_aligner_plugin import AlignerEncoderModel
    from nemo_aligner_plugin.onnx import AlignerOnnx

    reverse = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"reverse_audio": True}).model)
    assert json.loads((reverse.export(str(tmp_path / "rev")) / "config.json").read_text())["reverse_audio"] is True

    folder = tmp_path / "reversed"
    shutil.copytree(folders["fp32"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["reverse_audio"] = True
    (folder / "config.json").write_text(json.dumps(config))
    audio = [sf.read(path, dtype="float32")[0] for path in wavs[:3]]
    forward = AlignerOnnx(folders["fp32"], num_threads=1).transcribe([a[::-1].copy() for a in audio])
    assert [r.tokens for r in AlignerOnnx(folder, num_threads=1).transcribe(audio)] == [r.tokens for r in forward]
