"""benchmarks/sherpa_transducer.py: a tiny NeMo RNN-T exported for sherpa-onnx, decoded by sherpa-onnx.

sherpa-onnx computes its own fbank (25 ms povey window, 0-7600 Hz), which no NeMo preprocessor setting reproduces,
so its transcripts cannot be asserted equal to NeMo's. What is asserted instead: the exported graphs, fed NeMo's
own features and run greedily (max 10 symbols a frame, as both NeMo's config and sherpa's loop), give NeMo's greedy
tokens exactly; sherpa-onnx loads the fp32 and int8 folders, and fp32 gives the same texts batched as one at a time.
On the demo RNN-T the fbank difference costs 1.5 WER points (see the module's CLI).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, SAMPLE_RATE, TINY_ARCH_OVERRIDES, random_sentence, synth_tones

pytest.importorskip("sherpa_onnx", reason="sherpa-onnx is not installed (pip install sherpa-onnx==2.0.1)")
ort = pytest.importorskip("onnxruntime")


def load_benchmark_module():
    """benchmarks/ is a folder of scripts, not a package: load the module from its file."""
    spec = importlib.util.spec_from_file_location("sherpa_transducer", REPO / "benchmarks" / "sherpa_transducer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


st = load_benchmark_module()


@pytest.fixture(scope="module")
def tiny_rnnt(tokenizer_dir):
    """A random tiny EncDecRNNTBPEModel built from configs/baselines/rnnt_demo.yaml with the tests' tiny encoder."""
    from hydra import compose, initialize_config_dir
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    from nemo_aligner_plugin.demo.baselines import baseline_model_config

    overrides = [f"model.tokenizer.dir={tokenizer_dir}", "model.train_ds.manifest_filepath=null", *TINY_ARCH_OVERRIDES]
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base=None):
        cfg = compose(config_name="baselines/rnnt_demo", overrides=overrides)
    torch.manual_seed(3)
    return EncDecRNNTBPEModel(baseline_model_config(cfg)).eval()


@pytest.fixture(scope="module")
def audios() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [synth_tones(random_sentence(rng), rng) for _ in range(3)]


def nemo_greedy_tokens(model, audio: np.ndarray) -> list[int]:
    with torch.no_grad():
        signal, length = torch.from_numpy(audio)[None], torch.tensor([audio.size])
        encoded, encoded_len = model(input_signal=signal, input_signal_length=length)
        (hyp,) = model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len)
    return [int(t) for t in hyp.y_sequence]


def onnx_greedy_tokens(folder: Path, model, audio: np.ndarray, max_symbols: int = 10) -> list[int]:
    """Greedy over the exported encoder/decoder/joiner, on NeMo's features, stepping as sherpa-onnx's loop does."""
    encoder, decoder, joiner = (ort.InferenceSession(str(folder / f"{part}.onnx")) for part in st.PARTS)
    with torch.no_grad():
        feats, feats_len = model.preprocessor(
            input_signal=torch.from_numpy(audio)[None], length=torch.tensor([audio.size])
        )
    encoded, encoded_len = encoder.run(None, {"audio_signal": feats.numpy(), "length": feats_len.numpy()})
    blank, layers, hidden = model.decoder.blank_idx, model.decoder.pred_rnn_layers, model.decoder.pred_hidden
    names = [i.name for i in decoder.get_inputs()]

    def predict(token: int, state: list[np.ndarray]):
        out = decoder.run(
            None, dict(zip(names, [np.array([[token]], np.int32), np.array([1], np.int32), *state], strict=True))
        )
        return out[0], out[2:]

    state = [np.zeros((layers, 1, hidden), np.float32)] * 2
    pred_out, next_state = predict(blank, state)
    tokens = []
    for t in range(int(encoded_len[0])):
        for _ in range(max_symbols):
            feeds = {"encoder_outputs": encoded[:, :, t : t + 1], "decoder_outputs": pred_out}
            token = int(joiner.run(None, feeds)[0].reshape(-1).argmax())
            if token == blank:
                break
            tokens.append(token)
            pred_out, next_state = predict(token, next_state)
    return tokens


@pytest.mark.unit
def test_export_gives_nemo_greedy_tokens_and_sherpa_decodes_fp32_and_int8(tiny_rnnt, audios, tmp_path):
    fp32 = st.export_for_sherpa(tiny_rnnt, tmp_path / "fp32")
    tokens = (fp32 / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert tokens[-1] == f"<blk> {tiny_rnnt.decoder.vocab_size}" and len(tokens) == tiny_rnnt.decoder.vocab_size + 1
    meta = ort.InferenceSession(str(fp32 / "encoder.onnx")).get_modelmeta().custom_metadata_map
    assert meta["feat_dim"] == "40" and meta["normalize_type"] == "per_feature" and meta["subsampling_factor"] == "4"
    expected = [nemo_greedy_tokens(tiny_rnnt, a) for a in audios]
    assert any(expected), "the random model should emit some tokens for the comparison to mean anything"
    assert [onnx_greedy_tokens(fp32, tiny_rnnt, a) for a in audios] == expected

    int8 = st.export_for_sherpa(tiny_rnnt, tmp_path / "int8", quantize="int8")
    assert sorted(p.name for p in int8.iterdir()) == [
        "decoder.int8.onnx",
        "encoder.int8.onnx",
        "joiner.int8.onnx",
        "tokens.txt",
    ]
    vocabulary = set("".join(tiny_rnnt.joint.vocabulary).replace("▁", " "))  # "<unk>" comes out as is
    for folder in (fp32, int8):
        runner = st.SherpaTransducer(folder, num_threads=1)
        batched = runner.transcribe(audios, sample_rate=SAMPLE_RATE, batch_size=3)
        single = runner.transcribe(audios, sample_rate=SAMPLE_RATE, batch_size=1)
        assert len(batched) == len(audios) and all(isinstance(t, str) for t in batched)
        # int8: quantize_dynamic scales activations per tensor, over the whole zero-padded batch, so a row's
        # codes (and, on this random model's near-ties, its text) depend on its batch neighbours
        assert batched == single or folder == int8
        assert set("".join(batched)) <= vocabulary | {" "}
        assert runner.timings["decode"] > 0 and runner.timings["features"] > 0
        assert st.encoder_seconds(folder, audios, num_threads=1, batch_size=3) > 0


@pytest.mark.unit
def test_bad_folders_are_named_before_sherpa_onnx_can_end_the_process(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.onnx / encoder.int8.onnx, found neither"):
        st.model_files(tmp_path)
    for part in st.PARTS:
        (tmp_path / f"{part}.onnx").write_bytes(b"")
    (tmp_path / "tokens.txt").write_text("a 0\nb 1\n")
    with pytest.raises(ValueError, match="tokens.txt: the last line must be '<blk> 1'"):
        st.model_files(tmp_path)
    (tmp_path / "encoder.int8.onnx").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="found both"):
        st.model_files(tmp_path)
    assert st.sherpa_frames(16000) == 100 and st.sherpa_frames(16079) == 100 and st.sherpa_frames(16080) == 101
