"""NeMo CTC and RNN-T baselines built from the aligner demo config: same data, encoder, optimizer and budget.

A baseline YAML (configs/baselines/) inherits an aligner config through hydra's defaults list, names the NeMo
model class (``model_class``), removes the aligner-only model sections (``drop_model_sections``) and replaces the
head sections (``head``). ``cpu_rnnt_loss: vectorized`` trains RNN-T on CPU with our vectorized loss
(``demo/rnnt_loss.py``) instead of NeMo's numba loss (5.4 s a step at the demo shape).
"""

from __future__ import annotations

from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf, open_dict

from nemo_aligner_plugin.demo.rnnt_loss import use_vectorized_loss

__all__ = ["CPU_RNNT_LOSSES", "baseline_model_config", "use_cpu_rnnt_loss"]

CPU_RNNT_LOSSES = ("vectorized", None)


def use_cpu_rnnt_loss(model: Any, choice: Optional[str]) -> None:
    """Swap the inner loss of NeMo's RNNTLoss for ours (``cpu_rnnt_loss: vectorized``); NeMo's wrapper stays."""
    if choice not in CPU_RNNT_LOSSES:
        raise ValueError(f"cpu_rnnt_loss={choice!r}: expected one of {list(CPU_RNNT_LOSSES)}")
    if choice is None:
        return
    from nemo.collections.asr.losses.rnnt import RNNTLoss

    if not isinstance(getattr(model, "loss", None), RNNTLoss):
        raise ValueError(f"cpu_rnnt_loss={choice!r} needs an RNN-T model; {type(model).__name__} has no RNNTLoss")
    use_vectorized_loss(model.loss)


def baseline_model_config(cfg: DictConfig) -> DictConfig:
    """The model section the baseline class is built from: the aligner's, minus dropped sections, plus the head."""
    model = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    head = OmegaConf.create(OmegaConf.to_container(cfg.head, resolve=True))
    unknown = [k for k in cfg.drop_model_sections if k not in model]
    if unknown:
        raise ValueError(f"drop_model_sections names model sections that the config does not have: {unknown}")
    with open_dict(model):
        for key in cfg.drop_model_sections:
            del model[key]
        for key, section in head.items():
            model[key] = section
    return model
