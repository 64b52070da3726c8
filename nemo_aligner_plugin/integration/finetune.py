"""Fine-tune an Aligner-Encoder from a NeMo ASR model (CTC, RNN-T, TDT, hybrid, or another aligner).

The encoder is what is expensive to train and what an aligner shares with every NeMo ASR model:
we take the source's preprocessor and encoder (config and weights) and build a fresh prediction
network and joint on top. Two routes:

- ``from_asr_model(source, tokenizer="keep" | <dir>)``: builds the aligner config from the source
  (so the features match by construction) plus the plugin's head defaults, then loads the weights.
- NeMo's ``init_from_nemo_model`` / ``init_from_pretrained_model`` with include/exclude: the config
  comes from YAML; ``check_partial_state_dict`` makes its silent ``strict=False`` load explicit.

Either way a mismatch is one ``ValueError`` naming every key, never a partly-initialised model.
``EncoderFreezer`` is the Lightning callback for the freezing schedule.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from nemo.collections.asr.models import ASRModel
from nemo.collections.asr.modules import ConformerEncoder
from nemo.collections.common.tokenizers import SentencePieceTokenizer
from nemo.utils import logging
from omegaconf import DictConfig, OmegaConf

from nemo_aligner_plugin.config import head_defaults
from nemo_aligner_plugin.tokenizer import write_tokenizer_dir

__all__ = [
    "ENCODER_PREFIXES",
    "HEAD_DEFAULTS",
    "EncoderFreezer",
    "aligner_config_from_source",
    "build_finetune_model",
    "check_partial_state_dict",
    "export_sentencepiece_tokenizer",
    "from_asr_model",
    "load_source_model",
]

# What an aligner takes from its source: features and encoder. Prediction network and joint stay fresh.
ENCODER_PREFIXES = ("preprocessor.", "encoder.")

# The aligner-specific sections (configs/aligner_conformer_bpe.yaml lists the same; a test keeps them equal),
# from the option dataclasses, so the package does not read the repository's configs/ at run time.
HEAD_DEFAULTS: dict[str, Any] = head_defaults()
_DATASET = {"manifest_filepath": None, "batch_size": 16, "num_workers": 4, "pin_memory": True}
_DATASET.update(use_start_end_token=False, use_lhotse=False)


# ---------------------------------------------------------------------------------------------- source model
def load_source_model(source: Union[str, Path, ASRModel], map_location: str = "cpu") -> ASRModel:
    """A model instance, a ``.nemo`` path, or a name for ``ASRModel.from_pretrained``.

    Names cover NeMo's catalog, Hugging Face ids and the plugin's own catalog (``register_pretrained_model``):
    ``ASRModel.list_available_models()`` walks every ASRModel subclass, ours included.
    """
    if isinstance(source, ASRModel):
        return source
    path = Path(source)
    if path.suffix == ".nemo" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"Source model {source} does not exist")
        return ASRModel.restore_from(str(path), map_location=map_location)
    return ASRModel.from_pretrained(str(source), map_location=map_location)


def export_sentencepiece_tokenizer(model: ASRModel, out_dir: Union[str, Path]) -> Path:
    """Write the model's SentencePiece tokenizer as a NeMo tokenizer dir and return the dir.

    The proto comes from memory: after ``restore_from`` the model's own tokenizer files lived in a temporary
    directory that no longer exists. Layout as ``tokenizer.train_bpe_tokenizer``: tokenizer.model,
    tokenizer.vocab and vocab.txt (NeMo requires the last one to exist).
    """
    tokenizer = getattr(model, "tokenizer", None)
    if not isinstance(tokenizer, SentencePieceTokenizer):
        raise ValueError(
            f"tokenizer='keep' needs a SentencePiece (bpe) tokenizer in the source model; it has "
            f"{type(tokenizer).__name__}. Pass tokenizer=<dir with tokenizer.model> instead."
        )
    write_tokenizer_dir(tokenizer.tokenizer.serialized_model_proto(), out_dir)
    return Path(out_dir)


# ---------------------------------------------------------------------------------------------- config
def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else copy.deepcopy(cfg)


def aligner_config_from_source(
    source_cfg: DictConfig, tokenizer_dir: Union[str, Path], cfg_overrides: Optional[Mapping] = None
) -> DictConfig:
    """Head defaults < the source's sample rate, preprocessor, spec_augment and encoder < ``cfg_overrides``.

    ``cfg_overrides`` uses ``model``-section keys (e.g. ``{"model_defaults": {"pred_hidden": 320}}``). The
    joint's encoder size follows the final encoder config, so an override of the encoder stays consistent.
    """
    overrides = _plain(cfg_overrides) or {}
    if "tokenizer" in overrides:
        raise ValueError("Pass the tokenizer through the `tokenizer` argument ('keep' or a dir), not cfg_overrides")
    source = _plain(source_cfg)
    sample_rate = source.get("sample_rate") or source["preprocessor"].get("sample_rate", 16000)
    dataset = {**_DATASET, "sample_rate": sample_rate}
    from_source = {
        "sample_rate": sample_rate,
        "preprocessor": source["preprocessor"],
        "spec_augment": source.get("spec_augment"),
        "encoder": source["encoder"],
        "tokenizer": {"dir": str(tokenizer_dir), "type": "bpe"},
        "train_ds": {**dataset, "shuffle": True, "max_duration": 20.0, "min_duration": 0.1},
        "validation_ds": {**dataset, "shuffle": False},
        "test_ds": {**dataset, "shuffle": False},
    }
    cfg = OmegaConf.merge(HEAD_DEFAULTS, from_source, overrides)
    for name in ("train_ds", "validation_ds", "test_ds"):  # the preprocessor's rate is the only right one
        cfg[name].sample_rate = cfg.sample_rate
    encoder = cfg.encoder
    cfg.model_defaults.enc_hidden = encoder.feat_out if encoder.get("feat_out", -1) > 0 else encoder.d_model
    OmegaConf.resolve(cfg)
    _warn_if_limited_context(cfg.encoder)
    return cfg


def _warn_if_limited_context(encoder_cfg: DictConfig) -> None:
    context = list(encoder_cfg.get("att_context_size") or [-1, -1])
    if context != [-1, -1]:
        logging.warning(
            f"Source encoder uses limited attention context {context}: an aligner must see the whole utterance. "
            "Consider cfg_overrides={'encoder': {'att_context_size': [-1, -1]}}."
        )


# ---------------------------------------------------------------------------------------------- weights
def _selected(key: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """NeMo's ``load_part_of_state_dict`` rule: any include substring, and no exclude substring."""
    return any(p in key for p in include) and not any(e in key for e in exclude)


def check_partial_state_dict(
    model: torch.nn.Module,
    source_state_dict: Mapping[str, torch.Tensor],
    include: Sequence[str] = ("",),
    exclude: Sequence[str] = (),
    source: str = "the source model",
) -> dict[str, torch.Tensor]:
    """The tensors NeMo's partial init would load, after checking they fit ``model`` exactly.

    NeMo loads with ``strict=False``: keys only one side has are skipped without a word, so a source with
    fewer layers, or an include pattern with a typo, leaves freshly initialised weights behind. Here every
    selected key must exist on both sides with the same shape; all problems go into one ``ValueError``.
    """
    include, exclude = list(include), list(exclude)
    wanted = {k: v for k, v in source_state_dict.items() if _selected(k, include, exclude)}
    target = {k: v for k, v in model.state_dict().items() if _selected(k, include, exclude)}
    problems = []
    shapes = [
        f"  {k}: source {tuple(v.shape)}, model {tuple(target[k].shape)}"
        for k, v in wanted.items()
        if k in target and v.shape != target[k].shape
    ]
    if shapes:
        problems.append("shape mismatches:\n" + "\n".join(shapes))
    missing = sorted(set(target) - set(wanted))
    if missing:
        problems.append("missing in the source (would stay freshly initialised):\n" + _indent(missing))
    unexpected = sorted(set(wanted) - set(target))
    if unexpected:
        problems.append("not in the model (would be dropped):\n" + _indent(unexpected))
    unmatched = [p for p in include if not any(p in k for k in source_state_dict)]
    if unmatched:
        problems.append(f"include patterns matching no tensor of the source: {unmatched}")
    if problems:
        raise ValueError(
            f"Cannot initialise {type(model).__name__} from {source} (include={include}, exclude={exclude}):\n"
            + "\n".join(problems)
            + "\nThe selected tensors must match the source exactly: keep the source's encoder sizes; in "
            "init_from_* configs, leave keys out deliberately with `exclude`."
        )
    return wanted


def _indent(keys: Iterable[str]) -> str:
    return "\n".join(f"  {k}" for k in keys)


def from_asr_model(
    source: Union[str, Path, ASRModel],
    tokenizer: str = "keep",
    cfg_overrides: Optional[Union[Mapping, DictConfig]] = None,
    map_location: str = "cpu",
    *,
    model_class: type,
    trainer: Optional[Trainer] = None,
    tokenizer_out_dir: Optional[Union[str, Path]] = None,
) -> Any:
    """A ``model_class`` aligner with the source's preprocessor + encoder (config and weights) and a fresh head.

    source: ASRModel, ``.nemo`` path, NeMo/HF/plugin-catalog name. tokenizer: ``"keep"`` (the source's
    SentencePiece model, written to ``tokenizer_out_dir``; by default a temporary dir that lives as long as the
    model, because ``save_to`` packs the file from there) or a tokenizer dir (new vocabulary, as
    ``change_vocabulary``). ``AlignerEncoderModel.from_asr_model`` passes itself as ``model_class``.
    """
    model_in = load_source_model(source, map_location)
    if not isinstance(getattr(model_in, "encoder", None), ConformerEncoder):
        raise ValueError(
            f"An aligner needs a full-context self-attention encoder (NeMo ConformerEncoder: Conformer or "
            f"FastConformer); {type(model_in).__name__} has {type(getattr(model_in, 'encoder', None)).__name__}"
        )
    temporary = None
    if tokenizer == "keep":
        out_dir = tokenizer_out_dir or (temporary := tempfile.mkdtemp(prefix="aligner_tokenizer_"))
        tokenizer = str(export_sentencepiece_tokenizer(model_in, out_dir))
    cfg = aligner_config_from_source(model_in.cfg, tokenizer, cfg_overrides)
    model = model_class(cfg=cfg, trainer=trainer)
    if temporary is not None:  # removed with the model (or at exit), never left behind in the temp directory
        weakref.finalize(model, shutil.rmtree, temporary, ignore_errors=True)
    name = source if isinstance(source, (str, Path)) else type(source).__name__
    weights = check_partial_state_dict(model, model_in.state_dict(), include=ENCODER_PREFIXES, source=str(name))
    model.load_state_dict(weights, strict=False)
    model.to(map_location)
    logging.info(f"Aligner initialised from {name}: {len(weights)} preprocessor/encoder tensors, fresh head")
    return model


# ---------------------------------------------------------------------------------------------- recipe glue
def build_finetune_model(cfg: DictConfig, model_class: type, trainer: Optional[Trainer] = None, work_dir: str = "."):
    """The fine-tuning recipe's model: ``source_model`` -> ``from_asr_model``; else YAML + ``init_from_*``.

    With ``source_model`` the source owns sample_rate, preprocessor, spec_augment, encoder, tokenizer (unless
    ``source_tokenizer`` is a dir) and ``model_defaults.enc_hidden``; the rest of ``cfg.model`` is applied
    over the plugin defaults, and ``source_overrides`` (same keys as ``model``) over everything.
    """
    init_keys = ("init_from_nemo_model", "init_from_pretrained_model", "init_from_ptl_ckpt")
    init = {k: _drop_unset(cfg.get(k)) for k in init_keys}
    init = {k: v for k, v in init.items() if v}
    if cfg.get("source_model") and init:
        raise ValueError(f"Set either source_model or {sorted(init)}, not both")
    if not cfg.get("source_model"):
        if not init:
            raise ValueError(f"Fine-tuning needs a source: set source_model or one of {list(init_keys)}")
        model = model_class(cfg=cfg.model, trainer=trainer)
        model.maybe_init_from_pretrained_checkpoint(OmegaConf.create(init))
        return model
    owned = ("sample_rate", "preprocessor", "spec_augment", "encoder", "tokenizer")
    # source_overrides go into the model section before its interpolations resolve, so that an override of
    # model_defaults.pred_hidden reaches the prediction network and the joint alike; again on top for the keys
    # the source owns (e.g. encoder.att_context_size).
    source_overrides = cfg.get("source_overrides") or {}
    model_cfg = OmegaConf.merge(cfg, {"model": source_overrides}).model
    overrides = {k: v for k, v in _plain(model_cfg).items() if k not in owned}
    overrides.get("model_defaults", {}).pop("enc_hidden", None)
    overrides = OmegaConf.merge(overrides, source_overrides)
    return from_asr_model(
        cfg.source_model,
        tokenizer=cfg.get("source_tokenizer", "keep"),
        cfg_overrides=overrides,
        model_class=model_class,
        trainer=trainer,
        tokenizer_out_dir=Path(work_dir) / "tokenizer",
    )


def _drop_unset(init: Any) -> Any:
    """``init_from_*`` entries whose path/name is null are placeholders in the YAML, not sources."""
    if not isinstance(init, DictConfig):
        return init
    return {k: v for k, v in init.items() if v is not None and (v.get("path") or v.get("name"))}


# ---------------------------------------------------------------------------------------------- freezing
class EncoderFreezer(Callback):
    """Freeze the whole encoder for the first ``freeze_steps`` optimizer steps, ``frozen_layers`` for good.

    Frozen means ``requires_grad=False`` (AdamW skips parameters without gradients: no update, no weight
    decay) and ``eval()`` (BatchNorm running statistics and dropout stay as in the source). Lightning puts
    the model back into train mode after validation, so the state is re-applied before every batch; it is
    a function of ``global_step`` alone, so resuming from a checkpoint lands in the right state.

    frozen_layers: ``"pre_encode"`` (the subsampling), any other encoder submodule name, or an int ``i``
    for ``encoder.layers[i]``.
    """

    def __init__(self, freeze_steps: int = 0, frozen_layers: Sequence[Union[int, str]] = ()):
        if freeze_steps < 0:
            raise ValueError(f"freeze_encoder_steps must be >= 0, got {freeze_steps}")
        self.freeze_steps = int(freeze_steps)
        self.frozen_layers = list(frozen_layers)
        self._trainable: Optional[set[str]] = None  # encoder parameters trainable before we touched anything
        self._all_frozen: Optional[bool] = None

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Optional[EncoderFreezer]:
        """From the recipe's ``freeze_encoder_steps`` / ``freeze_encoder_layers``; None when both are off."""
        steps, layers = cfg.get("freeze_encoder_steps") or 0, list(cfg.get("freeze_encoder_layers") or [])
        return cls(steps, layers) if steps or layers else None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.frozen_modules(pl_module.encoder)  # a bad layer name fails before training starts
        ddp_kwargs = getattr(trainer.strategy, "_ddp_kwargs", None)
        if trainer.world_size > 1 and ddp_kwargs is not None and not ddp_kwargs.get("find_unused_parameters"):
            raise ValueError(
                "Freezing encoder parameters under DDP needs trainer.strategy=ddp_find_unused_parameters_true"
            )

    def frozen_modules(self, encoder: torch.nn.Module) -> list[torch.nn.Module]:
        """The permanently frozen submodules of ``encoder``."""
        found = []
        for layer in self.frozen_layers:
            if isinstance(layer, int):
                if not -len(encoder.layers) <= layer < len(encoder.layers):
                    raise ValueError(
                        f"freeze_encoder_layers: layer {layer} out of range ({len(encoder.layers)} layers)"
                    )
                found.append(encoder.layers[layer])
                continue
            try:
                found.append(encoder.get_submodule(str(layer)))
            except AttributeError as err:
                children = [name for name, _ in encoder.named_children()]
                raise ValueError(
                    f"freeze_encoder_layers: no encoder submodule {layer!r}; top level: {children}"
                ) from err
        return found

    def apply(self, encoder: torch.nn.Module, step: int, training: bool = True) -> bool:
        """Set requires_grad and train/eval for ``step``; returns whether the whole encoder is frozen."""
        if self._trainable is None:
            self._trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
        all_frozen = step < self.freeze_steps
        frozen = [encoder] if all_frozen else self.frozen_modules(encoder)
        frozen_ids = {id(p) for module in frozen for p in module.parameters()}
        for name, param in encoder.named_parameters():
            param.requires_grad_(name in self._trainable and id(param) not in frozen_ids)
        encoder.train(training)
        for module in frozen:
            module.eval()
        if all_frozen != self._all_frozen:
            self._log_change(encoder, step, all_frozen, frozen_ids)
        self._all_frozen = all_frozen
        return all_frozen

    def _log_change(self, encoder: torch.nn.Module, step: int, all_frozen: bool, frozen_ids: set[int]) -> None:
        count = sum(p.numel() for p in encoder.parameters() if id(p) in frozen_ids)
        if all_frozen:
            message = f"encoder frozen ({count:,} parameters) until step {self.freeze_steps}"
        else:
            message = f"encoder trainable; frozen for good: {self.frozen_layers or 'nothing'} ({count:,} parameters)"
        logging.info(f"EncoderFreezer: step {step}: {message}")

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._all_frozen is False and not self.frozen_layers:
            return  # unfrozen for good: nothing left to do
        all_frozen = self.apply(pl_module.encoder, trainer.global_step, training=pl_module.training)
        pl_module.log("encoder_frozen", float(all_frozen), on_step=True, on_epoch=False)
