"""Fine-tuning an aligner from NeMo CTC / RNN-T / hybrid Conformers: weights, tokenizer, errors, freezing, recipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from nemo.collections.asr.models import (
    ASRModel,
    EncDecCTCModelBPE,
    EncDecHybridRNNTCTCBPEModel,
    EncDecRNNTBPEModel,
)
from omegaconf import OmegaConf

from conftest import CONFIGS, REPO, SAMPLE_RATE, manifest_batch, overfit, tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel, from_asr_model
from nemo_aligner_plugin.integration import catalog
from nemo_aligner_plugin.integration.finetune import (
    ENCODER_PREFIXES,
    HEAD_DEFAULTS,
    EncoderFreezer,
    build_finetune_model,
    check_partial_state_dict,
)
from nemo_aligner_plugin.tokenizer import train_bpe_tokenizer

TINY_HEAD = {
    "model_defaults": {"pred_hidden": 32, "joint_hidden": 32},
    "decoder": {"prednet": {"dropout": 0.0}},
    "joint": {"jointnet": {"dropout": 0.0}},
}
RNNT_HEAD = {
    "model_defaults": {"enc_hidden": 64, "pred_hidden": 32, "joint_hidden": 32},
    "decoder": {
        "_target_": "nemo.collections.asr.modules.RNNTDecoder",
        "blank_as_pad": True,
        "prednet": {"pred_hidden": 32, "pred_rnn_layers": 1},
    },
    "joint": {
        "_target_": "nemo.collections.asr.modules.RNNTJoint",
        "log_softmax": None,
        "jointnet": {"joint_hidden": 32, "activation": "relu", "encoder_hidden": 64, "pred_hidden": 32},
    },
    "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 5}},
    "loss": {"loss_name": "pytorch"},  # the default numba loss is not needed to build or save a source
}
CTC_DECODER = {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 64, "num_classes": -1}
SOURCES = {
    "ctc": (EncDecCTCModelBPE, {"decoder": {**CTC_DECODER, "vocabulary": []}}),
    "rnnt": (EncDecRNNTBPEModel, RNNT_HEAD),
    "hybrid": (
        EncDecHybridRNNTCTCBPEModel,
        {**RNNT_HEAD, "aux_ctc": {"ctc_loss_weight": 0.3, "decoder": {**CTC_DECODER, "vocabulary": []}}},
    ),
}


def source_cfg(tokenizer_dir: Path, head: dict):
    """A NeMo model config around the same tiny encoder and preprocessor as conftest's ``tiny_cfg``."""
    aligner = tiny_cfg(tokenizer_dir).model
    body = {
        "sample_rate": SAMPLE_RATE,
        "tokenizer": {"dir": str(tokenizer_dir), "type": "bpe"},
        "preprocessor": aligner.preprocessor,
        "encoder": aligner.encoder,
        "train_ds": None,
        "validation_ds": None,
        "test_ds": None,
    }
    return OmegaConf.merge(body, head)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, tokenizer_dir) -> dict[str, Path]:
    """Tiny CTC, RNN-T and hybrid Conformers saved as .nemo (their encoders differ: different seeds)."""
    out = tmp_path_factory.mktemp("sources")
    paths = {}
    for seed, (kind, (model_class, head)) in enumerate(SOURCES.items()):
        torch.manual_seed(100 + seed)
        paths[kind] = out / f"tiny_{kind}.nemo"
        model_class(source_cfg(tokenizer_dir, head)).save_to(str(paths[kind]))
    return paths


def encoder_side(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith(ENCODER_PREFIXES)}


def assert_same_tensors(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    different = [k for k in expected if not torch.equal(actual[k], expected[k])]
    assert not different, different


# Keys of a model section that a fine-tuned aligner takes from its source or from the run, not from HEAD_DEFAULTS.
NOT_HEAD = {
    "sample_rate",
    "preprocessor",
    "spec_augment",
    "encoder",
    "tokenizer",
    "train_ds",
    "validation_ds",
    "test_ds",
}


@pytest.mark.unit
@pytest.mark.parametrize("config_name", ["aligner_conformer_bpe", "finetune_from_conformer"])
def test_head_defaults_equal_the_shipped_yaml(config_name):
    """The API's packaged defaults and the YAMLs describe the same aligner head: a new YAML key fails here."""
    defaults = OmegaConf.create(HEAD_DEFAULTS)
    OmegaConf.resolve(defaults)
    shipped = OmegaConf.load(CONFIGS / f"{config_name}.yaml").model
    OmegaConf.resolve(shipped)
    skip = NOT_HEAD | ({"optim"} if config_name == "aligner_conformer_bpe" else set())  # from scratch: other LR
    assert set(shipped) - skip == set(defaults) - skip
    for key in set(shipped) - skip - {"model_defaults"}:
        assert shipped[key] == defaults[key], key
    for key in ("pred_hidden", "joint_hidden"):  # enc_hidden follows the encoder
        assert shipped.model_defaults[key] == defaults.model_defaults[key]


@pytest.mark.unit
@pytest.mark.parametrize("kind", list(SOURCES))
def test_from_asr_model_takes_encoder_and_tokenizer_and_builds_a_fresh_head(sources, kind, tmp_path):
    source = ASRModel.restore_from(str(sources[kind])).eval()
    torch.manual_seed(7)
    model = from_asr_model(sources[kind], cfg_overrides=TINY_HEAD, tokenizer_out_dir=tmp_path / "tok").eval()
    assert_same_tensors(encoder_side(model), encoder_side(source))
    assert model.tokenizer.vocab == source.tokenizer.vocab
    assert (tmp_path / "tok" / "tokenizer.model").read_bytes() == source.tokenizer.tokenizer.serialized_model_proto()
    assert model.cfg.preprocessor == source.cfg.preprocessor and model.cfg.encoder == source.cfg.encoder
    audio = torch.randn(2, SAMPLE_RATE) * 0.1
    lengths = torch.tensor([SAMPLE_RATE, SAMPLE_RATE // 2])
    with torch.no_grad():  # same features, same encoder output
        features, feature_lens = source.preprocessor(input_signal=audio, length=lengths)
        expected = source.encoder(audio_signal=features, length=feature_lens)[0]
        assert torch.equal(model(input_signal=audio, input_signal_length=lengths)[0], expected)
    if kind != "ctc":  # same names and shapes as the source's RNN-T head: fresh means different values
        head = {k: v for k, v in source.state_dict().items() if k.startswith(("decoder.", "joint."))}
        assert all(not torch.equal(model.state_dict()[k], v) for k, v in head.items())
    assert model.joint.num_classes_with_blank == source.tokenizer.vocab_size + 1  # + EOS


@pytest.mark.unit
def test_aligner_from_ctc_learns_until_transcripts_are_exact(sources, tone_manifest, tmp_path):
    """The fine-tuned model trains and transcribes end to end (its encoder must learn to align)."""
    torch.manual_seed(0)
    model = from_asr_model(sources["ctc"], cfg_overrides=TINY_HEAD, tokenizer_out_dir=tmp_path / "tok")
    batch, texts = manifest_batch(model, tone_manifest)
    overfit(model, batch, texts)
    files = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()]
    assert [h.text for h in model.transcribe(files, batch_size=4, verbose=False)] == texts


@pytest.mark.unit
def test_kept_tokenizer_travels_in_the_saved_aligner(sources, tmp_path):
    model = from_asr_model(str(sources["ctc"]), cfg_overrides=TINY_HEAD, tokenizer_out_dir=tmp_path / "tok")
    model.save_to(str(tmp_path / "aligner.nemo"))
    restored = AlignerEncoderModel.restore_from(str(tmp_path / "aligner.nemo"))
    assert restored.tokenizer.vocab == model.tokenizer.vocab
    assert_same_tensors(encoder_side(restored), encoder_side(model))


@pytest.mark.unit
def test_new_tokenizer_dir_replaces_the_vocabulary(sources, tone_texts, tmp_path):
    new_dir = tmp_path / "new_tokenizer"
    size = train_bpe_tokenizer(tone_texts, new_dir, vocab_size=16)
    source = ASRModel.restore_from(str(sources["rnnt"]))
    model = from_asr_model(source, tokenizer=str(new_dir), cfg_overrides=TINY_HEAD)
    assert model.tokenizer.vocab_size == size != source.tokenizer.vocab_size
    assert model.joint.num_classes_with_blank == size + 1 and model.decoder.vocab_size == size
    assert_same_tensors(encoder_side(model), encoder_side(source))


@pytest.mark.unit
@pytest.mark.parametrize(
    "encoder_override, expected_lines",
    [
        ({"d_model": 96}, ["encoder.pre_encode.out.weight: source (64, 320), model (96, 320)", "shape mismatches"]),
        ({"n_layers": 3}, ["missing in the source", "encoder.layers.2.self_attn.linear_q.weight"]),
        ({"n_layers": 1}, ["not in the model", "encoder.layers.1.self_attn.linear_q.weight"]),
    ],
)
def test_mismatched_encoder_is_one_error_naming_every_key(sources, encoder_override, expected_lines):
    with pytest.raises(ValueError) as err:
        from_asr_model(sources["ctc"], cfg_overrides={**TINY_HEAD, "encoder": encoder_override})
    message = str(err.value)
    assert all(line in message for line in expected_lines), message
    if "d_model" in encoder_override:  # every encoder weight changes shape: all are listed, none skipped
        source_keys = [k for k, v in encoder_side(ASRModel.restore_from(str(sources["ctc"]))).items() if v.dim()]
        listed = [k for k in source_keys if f"  {k}: source" in message]
        assert len(listed) > 0.9 * len(source_keys)


@pytest.mark.unit
def test_check_partial_state_dict_names_include_typos_and_returns_the_selection():
    model = torch.nn.ModuleDict({"encoder": torch.nn.Linear(2, 3), "decoder": torch.nn.Linear(3, 2)})
    source = {"encoder.weight": torch.ones(3, 2), "encoder.bias": torch.ones(3), "decoder.weight": torch.ones(5, 3)}
    assert check_partial_state_dict(model, source, include=["encoder"]).keys() == {"encoder.weight", "encoder.bias"}
    with pytest.raises(ValueError, match=r"include patterns matching no tensor of the source: \['encodr'\]"):
        check_partial_state_dict(model, source, include=["encodr"])
    with pytest.raises(ValueError, match=r"decoder.weight: source \(5, 3\), model \(2, 3\)"):
        check_partial_state_dict(model, source, include=[""], exclude=["bias"])


def init_cfg(path: Path, include: list[str]):
    return OmegaConf.create({"init_from_nemo_model": {"encoder": {"path": str(path), "include": include}}})


@pytest.mark.unit
def test_init_from_nemo_model_with_include_encoder_loads_only_the_encoder(sources, tokenizer_dir):
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model)
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("decoder.", "joint."))}
    model.maybe_init_from_pretrained_checkpoint(init_cfg(sources["ctc"], ["encoder"]))
    source = ASRModel.restore_from(str(sources["ctc"]))
    assert_same_tensors(
        {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")},
        {k: v for k, v in source.state_dict().items() if k.startswith("encoder.")},
    )
    assert_same_tensors({k: model.state_dict()[k] for k in head_before}, head_before)


@pytest.mark.unit
def test_init_from_nemo_model_mismatch_is_one_clear_error(sources, tokenizer_dir):
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"encoder": {"n_layers": 3}}).model)
    with pytest.raises(ValueError, match="encoder.layers.2.feed_forward1.linear1.weight"):
        model.maybe_init_from_pretrained_checkpoint(init_cfg(sources["ctc"], ["encoder"]))


@pytest.mark.unit
def test_registered_catalog_name_resolves_offline(sources, tmp_path, monkeypatch):
    monkeypatch.setenv("NEMO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(catalog, "_RUNTIME_ENTRIES", {})
    catalog.register_pretrained_model("team_conformer_ctc", sources["ctc"].resolve().as_uri(), "tiny CTC")
    model = from_asr_model("team_conformer_ctc", cfg_overrides=TINY_HEAD)
    assert_same_tensors(encoder_side(model), encoder_side(ASRModel.restore_from(str(sources["ctc"]))))


@pytest.mark.unit
def test_finetune_yaml_builds_the_documented_model(tokenizer_dir):
    cfg = OmegaConf.load(CONFIGS / "finetune_from_conformer.yaml")
    cfg.model.tokenizer.dir = str(tokenizer_dir)
    cfg.model.train_ds.manifest_filepath = None
    OmegaConf.resolve(cfg)
    model = AlignerEncoderModel(cfg.model)
    assert model.encoder.n_layers == 18 and model.cfg.encoder.d_model == 512  # NeMo's Conformer-CTC-BPE Large
    assert model.cfg.preprocessor.window_size == 0.025 and model.cfg.optim.lr == 5e-4
    assert cfg.init_from_nemo_model.encoder.include == ["preprocessor", "encoder"]


def tiny_finetune_cfg(tokenizer_dir: Path, **top):
    """configs/finetune_from_conformer.yaml with the tiny encoder and head."""
    cfg = OmegaConf.load(CONFIGS / "finetune_from_conformer.yaml")
    cfg.model = tiny_cfg(tokenizer_dir, model={"optim": cfg.model.optim}).model
    return OmegaConf.merge(cfg, top)


@pytest.mark.unit
def test_recipe_glue_routes(sources, tokenizer_dir, tmp_path):
    nemo_route = tiny_finetune_cfg(tokenizer_dir, init_from_nemo_model={"encoder": {"path": str(sources["rnnt"])}})
    source = ASRModel.restore_from(str(sources["rnnt"]))
    assert_same_tensors(encoder_side(build_finetune_model(nemo_route, AlignerEncoderModel)), encoder_side(source))
    source_route = tiny_finetune_cfg(tokenizer_dir, source_model=str(sources["rnnt"]))
    model = build_finetune_model(source_route, AlignerEncoderModel, work_dir=str(tmp_path))
    assert_same_tensors(encoder_side(model), encoder_side(source))
    assert (tmp_path / "tokenizer" / "tokenizer.model").exists()
    with pytest.raises(ValueError, match="not both"):
        build_finetune_model(OmegaConf.merge(nemo_route, {"source_model": str(sources["rnnt"])}), AlignerEncoderModel)
    with pytest.raises(ValueError, match="needs a source"):
        build_finetune_model(tiny_finetune_cfg(tokenizer_dir), AlignerEncoderModel)


@pytest.mark.unit
def test_source_overrides_of_model_defaults_size_the_prediction_network_and_joint_alike(
    sources, tokenizer_dir, tmp_path
):
    """Issue 25 item 2: +source_overrides.model_defaults.pred_hidden=64 built the decoder at 640 and the joint at 64."""
    overrides = {"model_defaults": {"pred_hidden": 24, "joint_hidden": 24}}
    cfg = tiny_finetune_cfg(tokenizer_dir, source_model=str(sources["ctc"]), source_overrides=overrides)
    # as the shipped YAML: sizes interpolated from model_defaults
    cfg.model.model_defaults = {"enc_hidden": 64, "pred_hidden": 640, "joint_hidden": 640}
    cfg.model.decoder.prednet.pred_hidden = "${model.model_defaults.pred_hidden}"
    cfg.model.joint.jointnet.joint_hidden = "${model.model_defaults.joint_hidden}"
    model = build_finetune_model(cfg, AlignerEncoderModel, work_dir=str(tmp_path))
    assert model.cfg.decoder.prednet.pred_hidden == 24 == model.cfg.joint.jointnet.pred_hidden
    audio = torch.randn(2, SAMPLE_RATE) * 0.1
    encoded, encoded_len = model(input_signal=audio, input_signal_length=torch.full((2,), SAMPLE_RATE))
    tokens = torch.ones(2, 3, dtype=torch.long)
    loss = model.compute_loss(encoded, encoded_len, tokens, torch.full((2,), 3))  # crashed: mat1 and mat2 shapes
    assert torch.isfinite(loss)


@pytest.mark.unit
def test_kept_tokenizer_leaves_no_folder_in_the_temp_directory(sources, tmp_path, monkeypatch):
    import gc
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = from_asr_model(sources["ctc"], cfg_overrides=TINY_HEAD)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("aligner_tokenizer_")]  # lives with the model
    del model
    gc.collect()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("aligner_tokenizer_")]


def tiny_encoder(tokenizer_dir: Path) -> torch.nn.Module:
    return AlignerEncoderModel(tiny_cfg(tokenizer_dir).model).encoder


@pytest.mark.unit
def test_freezer_schedule_by_global_step(tokenizer_dir):
    encoder = tiny_encoder(tokenizer_dir)
    freezer = EncoderFreezer(freeze_steps=2, frozen_layers=["pre_encode", 0])
    for step in (0, 1):
        assert freezer.apply(encoder, step) is True
        assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    assert freezer.apply(encoder, 2) is False
    frozen = [encoder.pre_encode, encoder.layers[0]]
    assert not any(p.requires_grad for m in frozen for p in m.parameters()) and not any(m.training for m in frozen)
    assert all(p.requires_grad for p in encoder.layers[1].parameters()) and encoder.layers[1].training
    with pytest.raises(ValueError, match="no encoder submodule 'subsampling'; top level: \\['pre_encode'"):
        EncoderFreezer(frozen_layers=["subsampling"]).frozen_modules(encoder)
    with pytest.raises(ValueError, match="layer 5 out of range"):
        EncoderFreezer(frozen_layers=[5]).frozen_modules(encoder)


class WeightProbe(pl.Callback):
    """Copies the encoder's state after every optimizer step."""

    def __init__(self):
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.states.append({k: v.clone() for k, v in pl_module.encoder.state_dict().items()})


@pytest.mark.unit
def test_freezer_in_a_lightning_run_unfreezes_at_step_n(tokenizer_dir, tone_manifest, tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg(tokenizer_dir, model={"train_ds": {"manifest_filepath": str(tone_manifest)}})
    del cfg.model.optim["sched"]  # constant LR (NeMo cannot take sched=null)
    model = AlignerEncoderModel(cfg.model)
    start = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    probe = WeightProbe()
    trainer = pl.Trainer(
        max_steps=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=100,
        callbacks=[EncoderFreezer(freeze_steps=2, frozen_layers=["pre_encode"]), probe],
        default_root_dir=tmp_path,
    )
    trainer.fit(model)
    assert len(probe.states) == 4
    assert_same_tensors(probe.states[1], start)  # steps 0 and 1: nothing moved, BatchNorm statistics included
    moved = [k for k in start if not torch.equal(probe.states[2][k], start[k])]
    assert any(".running_mean" in k for k in moved) and any("self_attn" in k for k in moved)
    assert not [k for k in moved if k.startswith("pre_encode.")]  # frozen for good


@pytest.mark.unit
def test_finetune_recipe_runs_from_a_ctc_nemo(sources, tone_manifest, tmp_path):
    overrides = [
        f"source_model={sources['ctc']}",
        f"model.train_ds.manifest_filepath={tone_manifest}",
        f"exp_manager.exp_dir={tmp_path / 'exp'}",
        "exp_manager.create_tensorboard_logger=false",
        "exp_manager.create_checkpoint_callback=false",
        "model.model_defaults.pred_hidden=32",
        "model.model_defaults.joint_hidden=32",
        "model.train_ds.batch_size=8",
        "model.train_ds.num_workers=0",
        "model.optim.sched.warmup_steps=2",
        "freeze_encoder_steps=2",
        "freeze_encoder_layers=[pre_encode]",
        "trainer.max_steps=4",
        "trainer.max_epochs=-1",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.log_every_n_steps=2",
    ]
    proc = subprocess.run(
        [sys.executable, "recipes/finetune_aligner.py", *overrides],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "EncoderFreezer: step 2: encoder trainable" in proc.stdout + proc.stderr
    final = list((tmp_path / "exp").rglob("AlignerEncoder-Finetune-Conformer.nemo"))
    assert final and (final[0].parent / "tokenizer" / "tokenizer.model").exists()
    restored = AlignerEncoderModel.restore_from(str(final[0]))
    assert restored.tokenizer.vocab == ASRModel.restore_from(str(sources["ctc"])).tokenizer.vocab
