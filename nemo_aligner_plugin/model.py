"""AlignerEncoderModel: a NeMo ASR model whose encoder does the aligning.

B: batch size, T: encoder frames, D: encoder dim, U: target tokens, V: vocabulary (EOS excluded).

Built by composition on ``ASRModel`` and NeMo's mixins (like Canary's ``EncDecMultiTaskModel``),
never on ``EncDecRNNTBPEModel``: that class always builds the numba RNN-T loss and its
``from_config_dict`` logic would turn RNN-T checkpoints into aligners. NeMo's ConformerEncoder,
RNNTDecoder (prediction network) and RNNTJoint are reused as modules; only the joint's diagonal
is ever computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
from lightning.pytorch import Trainer
from nemo.collections.asr.metrics.wer import WER
from nemo.collections.asr.models.asr_model import ASRModel, ExportableEncDecModel
from nemo.collections.asr.modules.rnnt import RNNTDecoderJoint
from nemo.collections.asr.parts.mixins import ASRBPEMixin, ASRModuleMixin, ASRTranscriptionMixin
from nemo.core.classes.common import PretrainedModelInfo, typecheck
from nemo.core.neural_types import (
    AcousticEncodedRepresentation,
    AudioSignal,
    LengthsType,
    NeuralType,
    SpectrogramType,
)
from nemo.utils import logging, model_utils
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from nemo_aligner_plugin import checks
from nemo_aligner_plugin.augment import BatchAugmentation, reverse_within_length
from nemo_aligner_plugin.chunkwise import model_setup as chunkwise
from nemo_aligner_plugin.config import HeadFlags, read_section
from nemo_aligner_plugin.decoding.nemo_glue import AlignerBPEDecoding
from nemo_aligner_plugin.decoding.strategies import STRATEGIES, map_greedy_request, normalize_decoding_cfg
from nemo_aligner_plugin.integration import finetune
from nemo_aligner_plugin.integration.catalog import list_pretrained_models
from nemo_aligner_plugin.integration.data import build_dataloader, train_durations
from nemo_aligner_plugin.integration.hub import model_card, save_pretrained
from nemo_aligner_plugin.loss import AlignerLoss, SkippedUtterances
from nemo_aligner_plugin.modules.aux_ctc import AuxCTC
from nemo_aligner_plugin.modules.joint import diagonal_logits, leading_frames
from nemo_aligner_plugin.modules.layer_tap import LayerTap
from nemo_aligner_plugin.modules.nonar_head import NonARHead
from nemo_aligner_plugin.nemo_logs import quiet_nemo
from nemo_aligner_plugin.nonspeech import inference_features_for_silent_rows, silent_rows
from nemo_aligner_plugin.transcription import AlignerTranscriptionMixin

__all__ = ["AlignerEncoderModel"]


class AlignerEncoderModel(
    AlignerTranscriptionMixin, ASRModel, ExportableEncDecModel, ASRBPEMixin, ASRModuleMixin, ASRTranscriptionMixin
):
    """Aligner-Encoder (Stooke et al., NeurIPS 2024): Conformer + LSTM prediction net + diagonal joint."""

    def __init__(self, cfg: DictConfig, trainer: Optional[Trainer] = None):
        cfg = model_utils.convert_model_config_to_dict_config(cfg)
        cfg = model_utils.maybe_update_config_version(cfg)
        flags = HeadFlags.read(cfg)
        self.aligner_type = flags.aligner_type
        autoregressive = self.aligner_type in ("ar", "chunkwise")  # with a prediction network and joint
        required = ("tokenizer", "preprocessor", "encoder") + (("decoder", "joint") if autoregressive else ())
        for key in required:
            if key not in cfg:
                raise ValueError(f"AlignerEncoderModel config is missing `model.{key}`")
        self.world_size = trainer.world_size if trainer is not None else 1
        self._setup_tokenizer(cfg.tokenizer)
        vocabulary = list(self.tokenizer.tokenizer.get_vocab())
        options = {key: read_section(cfg, key) for key in ("loss", "aux_ctc", "aux_aligner", "nonar_aux")}
        with open_dict(cfg):  # the sizes follow the tokenizer and the prediction network; all in one place
            cfg.nemo_aligner_plugin_version = checks.plugin_version_stamp(cfg.get("nemo_aligner_plugin_version"))
            cfg.labels = ListConfig(vocabulary)
            if autoregressive:
                cfg.decoder.vocab_size = len(vocabulary)
                cfg.joint.num_classes = len(vocabulary)
                cfg.joint.vocabulary = ListConfig(vocabulary)
                cfg.joint.jointnet.encoder_hidden = cfg.model_defaults.enc_hidden
                cfg.joint.jointnet.pred_hidden = cfg.decoder.prednet.pred_hidden
            cfg.loss = OmegaConf.structured(options["loss"])
            self.chunkwise = chunkwise.configure_streaming_encoder(cfg) if self.aligner_type == "chunkwise" else None

        if trainer is None:  # restore or inference: NeMo's advice to set up data loaders, with config dumps, is noise
            with quiet_nemo():
                super().__init__(cfg=cfg, trainer=trainer)
        else:
            super().__init__(cfg=cfg, trainer=trainer)

        self.preprocessor = self.from_config_dict(self.cfg.preprocessor)
        self.encoder = self.from_config_dict(self.cfg.encoder)
        self.spec_augmentation = self.from_config_dict(self.cfg.spec_augment) if self.cfg.get("spec_augment") else None
        self.decoder = self.joint = self.nonar_head = None
        if autoregressive:
            self.decoder = self.from_config_dict(self.cfg.decoder)
            if not self.decoder.blank_as_pad:
                raise ValueError("model.decoder.blank_as_pad must be true: EOS is the blank slot, which embeds to 0")
            self.joint = self.from_config_dict(self.cfg.joint)
        self.nonar_aux_weight = options["nonar_aux"].weight if autoregressive else 0.0
        if not autoregressive or self.nonar_aux_weight > 0:
            self.nonar_head = NonARHead(self.encoder.d_model, len(vocabulary))
        self.eos_id = len(vocabulary)  # the RNN-T blank slot: NeMo's decoding wrapper strips it from text
        loss_options = vars(options["loss"])
        self.loss = AlignerLoss(eos_id=self.eos_id, **loss_options)
        if self.chunkwise is not None:  # the chunk x label lattice; EOS is the end-of-chunk symbol
            self.loss = chunkwise.make_loss(self.eos_id, self.chunkwise, options["loss"])
        self.nonar_aux_loss = AlignerLoss(eos_id=self.eos_id, **loss_options)
        # Utterances the main loss could not align, counted apart: validation's never reach the training summary.
        self.skipped_train = SkippedUtterances("training")
        self.skipped_val = SkippedUtterances("validation", warn=False)
        self.compute_eval_loss = flags.compute_eval_loss
        self.aux_ctc_weight = options["aux_ctc"].weight
        self.aux_ctc = None
        if self.aux_ctc_weight > 0:
            self.aux_ctc = AuxCTC(self.encoder, self.encoder.d_model, len(vocabulary), layer=options["aux_ctc"].layer)
        self.aux_aligner_weight = options["aux_aligner"].weight
        self.aux_aligner_tap = None
        if self.aux_aligner_weight > 0:  # the same decoder and joint, fed an intermediate layer's frames
            self.aux_aligner_tap = LayerTap(self.encoder, options["aux_aligner"].layer, owner="aux_aligner")
            self.aux_aligner_loss = AlignerLoss(eos_id=self.eos_id, **loss_options)
        self.reverse_audio = flags.reverse_audio
        self.flags = flags
        self.augmentation = BatchAugmentation(
            read_section(self.cfg, "concat_utterances"),
            read_section(self.cfg, "silence_padding"),
            self.cfg.sample_rate,
            read_section(self.cfg, "nonspeech"),
        )
        read_section(self.cfg, "longform")  # a bad long-form key or value fails here, not at the first long file
        with open_dict(self.cfg):
            self.cfg.decoding = self._resolve_decoding_cfg(self.cfg.get("decoding"))
        self._build_decoding(self.cfg.decoding)
        # not setup_optimization_flags(): checks.NonFiniteGuard is the one NaN-step mechanism (checks/nonfinite.py)
        self.setup_adapters()
        self.nonfinite_guard = checks.NonFiniteGuard()

    # ------------------------------------------------------------------ decoding
    def _resolve_decoding_cfg(self, decoding_cfg) -> DictConfig:
        """Validate a decoding config against what this model has (prediction network or non-AR head)."""
        cfg = normalize_decoding_cfg(decoding_cfg)
        chunkwise.resolve_decoding(cfg, self.chunkwise)  # chunkwise_greedy if and only if aligner_type=chunkwise
        if self.aligner_type == "nonar":  # no prediction network
            map_greedy_request(cfg, "nonar_greedy", self.aligner_type)
        elif cfg.strategy == "nonar_greedy" and self.nonar_head is None:
            raise ValueError("decoding.strategy='nonar_greedy' needs a non-AR head: set model.nonar_aux.weight > 0")
        return cfg

    def _build_decoding(self, decoding_cfg: DictConfig) -> None:
        decoder, joint = STRATEGIES[decoding_cfg.strategy].modules(self)
        self.decoding = AlignerBPEDecoding(decoding_cfg, decoder, joint, self.tokenizer)
        self.wer = WER(
            decoding=self.decoding,
            batch_dim_index=0,
            use_cer=self.flags.use_cer,
            log_prediction=self.flags.log_prediction,
            dist_sync_on_step=True,
        )

    def change_decoding_strategy(self, decoding_cfg: Optional[DictConfig] = None, verbose: bool = True) -> None:
        """Switch decoding; accepts the aligner's ``decoding`` config or an RNN-T one (NeMo scripts pass those)."""
        decoding_cfg = self._resolve_decoding_cfg(decoding_cfg if decoding_cfg is not None else self.cfg.decoding)
        self._build_decoding(decoding_cfg)
        with open_dict(self.cfg):
            self.cfg.decoding = decoding_cfg
        if verbose:
            options = OmegaConf.to_container(decoding_cfg[STRATEGIES[decoding_cfg.strategy].cfg_key])
            logging.info(f"Aligner decoding: {decoding_cfg.strategy} {options}")

    # ------------------------------------------------------------------ data
    def _setup_dataloader_from_config(self, config: DictConfig):
        return build_dataloader(
            config,
            self.tokenizer,
            global_rank=self.global_rank if not config.get("do_transcribe", False) else config.get("global_rank", 0),
            world_size=self.world_size if not config.get("do_transcribe", False) else config.get("world_size", 1),
            local_rank=self.local_rank,
            preprocessor_cfg=self.cfg.get("preprocessor"),
        )

    def setup_training_data(self, train_data_config: Optional[Union[DictConfig, dict]]) -> None:
        if "shuffle" not in train_data_config:
            train_data_config["shuffle"] = True
        self._update_dataset_config(dataset_name="train", config=train_data_config)
        self._train_dl = self._setup_dataloader_from_config(train_data_config)

    def setup_validation_data(self, val_data_config: Optional[Union[DictConfig, dict]]) -> None:
        if "shuffle" not in val_data_config:
            val_data_config["shuffle"] = False
        self._update_dataset_config(dataset_name="validation", config=val_data_config)
        self._validation_dl = self._setup_dataloader_from_config(val_data_config)

    def setup_test_data(self, test_data_config: Optional[Union[DictConfig, dict]]) -> None:
        if "shuffle" not in test_data_config:
            test_data_config["shuffle"] = False
        self._update_dataset_config(dataset_name="test", config=test_data_config)
        self._test_dl = self._setup_dataloader_from_config(test_data_config)

    # ------------------------------------------------------------------ forward
    @property
    def input_types(self) -> dict[str, NeuralType]:
        return {
            "input_signal": NeuralType(("B", "T"), AudioSignal(freq=self.preprocessor._sample_rate), optional=True),
            "input_signal_length": NeuralType(tuple("B"), LengthsType(), optional=True),
            "processed_signal": NeuralType(("B", "D", "T"), SpectrogramType(), optional=True),
            "processed_signal_length": NeuralType(tuple("B"), LengthsType(), optional=True),
        }

    @property
    def output_types(self) -> dict[str, NeuralType]:
        return {
            "outputs": NeuralType(("B", "D", "T"), AcousticEncodedRepresentation()),
            "encoded_lengths": NeuralType(tuple("B"), LengthsType()),
        }

    @typecheck()
    def forward(self, input_signal=None, input_signal_length=None, processed_signal=None, processed_signal_length=None):
        """Audio (B, samples) or features (B, F, frames) -> encoder output (B, D, T) and lengths (B,)."""
        if (input_signal is None) == (processed_signal is None):
            raise ValueError("Pass exactly one of input_signal or processed_signal (with its length).")
        if processed_signal is None:
            if input_signal.shape[-1] == 0:  # only empty audio: NeMo's preemphasis reads sample 0; lengths stay 0
                input_signal = torch.nn.functional.pad(input_signal, (0, 1))
            if self.reverse_audio:
                input_signal = reverse_within_length(input_signal, input_signal_length)
            silent = silent_rows(input_signal, input_signal_length) if self.training else None
            processed_signal, processed_signal_length = self.preprocessor(
                input_signal=input_signal, length=input_signal_length
            )
            if silent is not None:  # digital silence as inference will see it (NeMo dithers only in training)
                processed_signal = inference_features_for_silent_rows(
                    self.preprocessor, silent, input_signal_length, processed_signal
                )
        if self.spec_augmentation is not None and self.training:
            processed_signal = self.spec_augmentation(input_spec=processed_signal, length=processed_signal_length)
        return self.encoder(audio_signal=processed_signal, length=processed_signal_length)

    def prediction_states(self, transcript: torch.Tensor, transcript_len: torch.Tensor) -> Optional[torch.Tensor]:
        """transcript (B, U) -> prediction-network states (B, U+1, H); None for a non-AR aligner."""
        if self.decoder is None:
            return None
        pred_out, _, _ = self.decoder(targets=transcript, target_length=transcript_len)  # (B, H, U+1)
        return pred_out.transpose(1, 2)

    def aligner_logits(
        self,
        encoded: torch.Tensor,
        transcript: torch.Tensor,
        transcript_len: torch.Tensor,
        pred: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """encoded (B, D, T), transcript (B, U) -> logits (B, U+1, V+1): frame i with prediction state i.

        ``pred``: states from ``prediction_states``, when several encoder layers are scored against them.
        """
        if self.decoder is None:
            return self.nonar_logits(encoded, transcript.size(1) + 1)
        if pred is None:
            pred = self.prediction_states(transcript, transcript_len)
        return diagonal_logits(self.joint, encoded.transpose(1, 2), pred)

    def nonar_logits(self, encoded: torch.Tensor, positions: int) -> torch.Tensor:
        """encoded (B, D, T) -> (B, positions, V+1) from the per-frame classifier."""
        return self.nonar_head(leading_frames(encoded.transpose(1, 2), positions))

    def compute_loss(
        self, encoded, encoded_len, transcript, transcript_len, loss: Optional[AlignerLoss] = None, pred=None
    ) -> torch.Tensor:
        """The aligner loss (``self.loss`` unless another instance is given) of frames ``encoded``."""
        if self.chunkwise is not None:
            return chunkwise.chunkwise_loss(self, encoded, encoded_len, transcript, transcript_len, pred, loss)
        logits = self.aligner_logits(encoded, transcript, transcript_len, pred)
        loss = self.loss if loss is None else loss
        return loss(logits=logits, targets=transcript, target_lengths=transcript_len, encoder_lengths=encoded_len)

    def compute_nonar_aux_loss(self, encoded, encoded_len, transcript, transcript_len) -> torch.Tensor:
        logits = self.nonar_logits(encoded, transcript.size(1) + 1)
        return self.nonar_aux_loss(
            logits=logits, targets=transcript, target_lengths=transcript_len, encoder_lengths=encoded_len
        )

    # ------------------------------------------------------------------ Lightning steps
    def training_step(self, batch, batch_nb):
        signal, signal_len, transcript, transcript_len = batch[:4]
        signal, signal_len, transcript, transcript_len = self.augmentation(
            signal, signal_len, transcript, transcript_len, self.global_step, getattr(self, "global_rank", 0)
        )
        encoded, encoded_len = self.forward(input_signal=signal, input_signal_length=signal_len)
        pred = self.prediction_states(transcript, transcript_len)  # once, also for the intermediate aligner loss
        aligner_loss = self.compute_loss(encoded, encoded_len, transcript, transcript_len, pred=pred)
        self.skipped_train.note(self.loss.num_skipped_last, transcript.size(0))
        loss_value = aligner_loss
        logs = {}
        if self.aux_ctc is not None:
            ctc_loss = self.aux_ctc(encoded, encoded_len, transcript, transcript_len)
            loss_value = loss_value + self.aux_ctc_weight * ctc_loss
            logs.update(train_aligner_loss=aligner_loss, train_aux_ctc_loss=ctc_loss)
        if self.aux_aligner_tap is not None:
            inner = self.aux_aligner_tap.take().transpose(1, 2)  # (B, D, T)
            inner_loss = self.compute_loss(
                inner, encoded_len, transcript, transcript_len, loss=self.aux_aligner_loss, pred=pred
            )
            loss_value = loss_value + self.aux_aligner_weight * inner_loss
            logs.update(train_aligner_loss=aligner_loss, train_aux_aligner_loss=inner_loss)
        if self.nonar_aux_weight > 0:
            nonar_loss = self.compute_nonar_aux_loss(encoded, encoded_len, transcript, transcript_len)
            loss_value = loss_value + self.nonar_aux_weight * nonar_loss
            logs.update(train_aligner_loss=aligner_loss, train_nonar_aux_loss=nonar_loss)
        loss_value = self.add_auxiliary_losses(loss_value)
        self.nonfinite_guard.note_loss(loss_value)
        logs.update(
            {
                "train_loss": loss_value,
                "learning_rate": self._optimizer.param_groups[0]["lr"],
                "global_step": torch.tensor(self.trainer.global_step, dtype=torch.float32),
                "train_skipped_utts": float(self.skipped_train.last),
            }
        )
        if (batch_nb + 1) % self.trainer.log_every_n_steps == 0:
            self.wer.update(encoded, encoded_len, transcript, transcript_len)
            _, scores, words = self.wer.compute()
            self.wer.reset()
            logs["training_batch_wer"] = scores.float() / words
        self.log_dict(logs)
        return {"loss": loss_value}

    def validation_pass(self, batch, batch_idx, dataloader_idx=0) -> dict[str, torch.Tensor]:
        signal, signal_len, transcript, transcript_len = batch[:4]
        encoded, encoded_len = self.forward(input_signal=signal, input_signal_length=signal_len)
        logs = {}
        if self.compute_eval_loss:
            logs["val_loss"] = self.compute_loss(encoded, encoded_len, transcript, transcript_len)
            self.skipped_val.note(self.loss.num_skipped_last, transcript.size(0))
            logs["val_skipped_utts"] = float(self.skipped_val.last)
        self.wer.update(encoded, encoded_len, transcript, transcript_len)
        wer, wer_num, wer_denom = self.wer.compute()
        self.wer.reset()
        logs.update(val_wer_num=wer_num, val_wer_denom=wer_denom, val_wer=wer)
        return logs

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        metrics = self.validation_pass(batch, batch_idx, dataloader_idx)
        return _collect(self.validation_step_outputs, self.trainer.val_dataloaders, dataloader_idx, metrics)

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        metrics = self.validation_pass(batch, batch_idx, dataloader_idx)
        logs = {k.replace("val_", "test_"): v for k, v in metrics.items()}
        return _collect(self.test_step_outputs, self.trainer.test_dataloaders, dataloader_idx, logs)

    def on_before_optimizer_step(self, optimizer) -> None:
        """A NaN/inf loss or gradient on any rank drops this optimizer step on every rank."""
        super().on_before_optimizer_step(optimizer)
        self.nonfinite_guard.skip_if_nonfinite(self.parameters(), optimizer, step=self.trainer.global_step)
        self.log("train_nonfinite_steps", float(self.nonfinite_guard.num_skipped))

    def on_train_start(self) -> None:
        """Record the training utterances' lengths in ``model.train_durations`` (long-form ``auto`` reads them);
        at the start, so that every checkpoint of the run carries them."""
        super().on_train_start()
        self.augmentation.nonspeech.prepare()  # a bad model.nonspeech.manifest_filepath fails now, not at start_step
        durations = train_durations(self.cfg.get("train_ds"))
        if durations is not None:
            with open_dict(self.cfg):
                self.cfg.train_durations = OmegaConf.structured(durations)

    def save_to(self, save_path: str) -> None:
        """ModelPT.save_to, atomic: a kill or a full disk never leaves a half-written .nemo."""
        with checks.atomic_output(save_path) as partial_path:
            super().save_to(partial_path)

    @classmethod
    def restore_from(cls, restore_path: str, *args, **kwargs):
        checks.check_nemo_archive(restore_path)
        return super().restore_from(restore_path, *args, **kwargs)

    # ------------------------------------------------------------------ fine-tuning
    @classmethod
    def from_asr_model(cls, source, tokenizer: str = "keep", cfg_overrides=None, map_location: str = "cpu", **kwargs):
        """An aligner whose preprocessor and encoder come from a NeMo ASR model (.nemo, name or instance).

        See ``nemo_aligner_plugin.integration.finetune.from_asr_model``; the prediction network and joint start fresh.
        """
        return finetune.from_asr_model(source, tokenizer, cfg_overrides, map_location, model_class=cls, **kwargs)

    def load_part_of_state_dict(self, state_dict, include, exclude, load_from_string=None) -> None:
        """NeMo's partial init (``init_from_*`` with include/exclude), but any mismatch is one ValueError."""
        finetune.check_partial_state_dict(self, state_dict, include, exclude, source=load_from_string or "a checkpoint")
        super().load_part_of_state_dict(state_dict, include, exclude, load_from_string)

    # ------------------------------------------------------------------ export
    def list_export_subnets(self) -> list[str]:
        """NeMo's RNN-T split: the encoder, and one greedy step of prediction network + joint."""
        return ["encoder", "decoder_joint"]

    @property
    def decoder_joint(self) -> RNNTDecoderJoint:
        return RNNTDecoderJoint(self.decoder, self.joint)

    def export(self, output: str, *args, quantize: Optional[str] = None, **kwargs):
        """``output`` a folder: what the torch-free runtime reads (docs/onnx.md; ``quantize="int8"``: int8 weights).
        A ``.onnx``/``.ts`` name: NeMo's export, one file per subnet (``encoder-<name>``, ``decoder_joint-<name>``)."""
        if Path(output).suffix in (".onnx", ".ts", ".pt"):
            if quantize is not None:
                raise ValueError("quantize applies to a folder export: pass a directory as output")
            return super().export(output, *args, **kwargs)
        from nemo_aligner_plugin.onnx.export import export_folder

        return export_folder(self, output, quantize=quantize, **kwargs)

    # ------------------------------------------------------------------ catalog and hub
    @classmethod
    def list_available_models(cls) -> list[PretrainedModelInfo]:
        """The plugin's own catalog (see ``nemo_aligner_plugin.integration.catalog``)."""
        return list_pretrained_models(cls)

    def save_pretrained(
        self,
        save_directory: str,
        repo_id: Optional[str] = None,
        metrics: Optional[dict[str, float]] = None,
        description: Optional[str] = None,
        overwrite: bool = False,
    ):
        """Export to a Hugging Face-layout folder (``<name>.nemo``, model card, config); see ``hub.save_pretrained``."""
        return save_pretrained(
            self, save_directory, repo_id=repo_id, metrics=metrics, description=description, overwrite=overwrite
        )

    def generate_model_card(self, type: str = "hf", template: Optional[str] = None, template_kwargs=None):
        """The card NeMo's ``push_to_hf_hub`` uploads: ours (config summary) unless a template is given."""
        if template is not None or type != "hf":
            return super().generate_model_card(type=type, template=template, template_kwargs=template_kwargs)
        repo_id = (template_kwargs or {}).get("repo_id", self.cfg.get("name", "aligner-encoder"))
        return model_card(self.cfg, repo_id, sum(p.numel() for p in self.parameters()))


def _collect(outputs: list, loaders, dataloader_idx: int, metrics: dict) -> dict:
    """Append to NeMo's step outputs: one list per dataloader when there are several."""
    (outputs[dataloader_idx] if isinstance(loaders, list) and len(loaders) > 1 else outputs).append(metrics)
    return metrics
