"""``transcribe()`` for aligners: NeMo's transcription contract, long-form routing and attention timestamps.

B: batch size, T: encoder frames, D: encoder dim.

NeMo's ``TranscriptionMixin`` drives the loop (input processing, DataLoader, forward, output processing); this
mixin supplies the aligner's steps, sends long audio through long-form decoding (``nemo_aligner_plugin.longform``)
and keeps the call quiet: one progress bar with a total, no config dumps or per-call NeMo warnings.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any, Optional, Union

import torch
from nemo.collections.asr.parts.mixins.transcription import TranscribeConfig, TranscriptionMixin
from nemo.utils import logging
from omegaconf import DictConfig, OmegaConf

from nemo_aligner_plugin import checks
from nemo_aligner_plugin.analysis import AttentionMaps, recording_attention, timestamps_from_maps
from nemo_aligner_plugin.longform import longform_items, transcribe_routed
from nemo_aligner_plugin.nemo_logs import quiet_nemo

__all__ = ["AlignerTranscriptionMixin"]


class AlignerTranscriptionMixin:
    """The aligner's side of NeMo's ``TranscriptionMixin``; mixed into ``AlignerEncoderModel``."""

    def transcribe(
        self,
        audio: Union[str, list[str], Any],
        batch_size: int = 4,
        return_hypotheses: bool = False,
        num_workers: int = 0,
        channel_selector: Optional[Any] = None,
        augmentor: Optional[DictConfig] = None,
        verbose: bool = True,
        timestamps: Optional[bool] = None,
        use_lhotse: bool = False,
        override_config: Optional[TranscribeConfig] = None,
    ):
        """Transcribe audio files, a manifest, arrays or a DataLoader; returns NeMo Hypothesis objects.

        ``timestamps`` applies to this call only: the model's decoding config is restored afterwards.
        ``verbose`` shows one progress bar with a total (plain and long-form); NeMo's own per-call logs appear only
        at NeMo's DEBUG verbosity (``nemo.utils.logging.set_verbosity(logging.DEBUG)``).
        """
        wanted = bool(timestamps) if timestamps is not None else bool(self.cfg.decoding.get("compute_timestamps"))
        previous = None
        if wanted != bool(self.cfg.decoding.get("compute_timestamps")):
            previous = OmegaConf.to_container(self.cfg.decoding)
            self.change_decoding_strategy({**previous, "compute_timestamps": wanted}, verbose=False)
        try:
            with quiet_nemo(logging.get_verbosity() > logging.DEBUG):
                return self._transcribe_routed(
                    audio,
                    batch_size=batch_size,
                    return_hypotheses=return_hypotheses or wanted,  # as NeMo's RNN-T: times live on Hypotheses
                    num_workers=num_workers,
                    channel_selector=channel_selector,
                    augmentor=augmentor,
                    verbose=verbose,
                    timestamps=timestamps,
                    use_lhotse=use_lhotse,
                    override_config=override_config,
                )
        finally:
            if previous is not None:
                self.change_decoding_strategy(previous, verbose=False)

    def _transcribe_routed(self, audio, batch_size: int, **kwargs):
        """Long audio through long-form decoding where the input allows it; everything else through NeMo's loop."""
        plain = partial(super().transcribe, batch_size=batch_size, **kwargs)
        # a chunkwise model reads any length chunk by chunk: no long-form cutting, no trained-length warning
        items = (
            None
            if self.chunkwise is not None
            else longform_items(
                self,
                audio,
                override_config=kwargs["override_config"],
                channel_selector=kwargs["channel_selector"],
                augmentor=kwargs["augmentor"],
                timestamps=bool(kwargs["timestamps"] or self.cfg.decoding.get("compute_timestamps")),
            )
        )
        check_duration = items is None and self.chunkwise is None
        checks.check_transcribe_inputs(self, audio, check_duration=check_duration, use_lhotse=kwargs["use_lhotse"])
        if items is None:
            return plain(audio)
        return transcribe_routed(self, items, None, plain, batch_size=batch_size, verbose=kwargs["verbose"])

    def _transcribe_on_begin(self, audio, trcfg: TranscribeConfig):
        # NeMo's version freezes encoder/decoder/joint; a non-AR model has no decoder or joint.
        TranscriptionMixin._transcribe_on_begin(self, audio, trcfg)
        for module in (self.encoder, self.decoder, self.joint):
            if module is not None:
                module.freeze()

    def _transcribe_on_end(self, trcfg: TranscribeConfig):
        TranscriptionMixin._transcribe_on_end(self, trcfg)
        for module in (self.encoder, self.decoder, self.joint):
            if module is not None:
                module.unfreeze(partial=True)

    def _transcribe_forward(self, batch: Any, trcfg: TranscribeConfig) -> dict[str, Any]:
        if not (trcfg.timestamps or self.cfg.decoding.get("compute_timestamps")):
            encoded, encoded_len = self.forward(input_signal=batch[0], input_signal_length=batch[1])
            return {"encoded": encoded, "encoded_len": encoded_len}
        # Timestamps come from the aligning layer's attention, recorded during this same forward pass.
        layer = self.cfg.decoding.get("timestamps_layer")
        with recording_attention(self.encoder, None if layer is None else [layer], head_average=True) as records:
            encoded, encoded_len = self.forward(input_signal=batch[0], input_signal_length=batch[1])
        layers = sorted(records)
        maps = AttentionMaps([records[i] for i in layers], encoded_len.cpu(), layers)
        return {"encoded": encoded, "encoded_len": encoded_len, "attention": maps}

    def _transcribe_output_processing(self, outputs: dict, trcfg: TranscribeConfig):
        maps = outputs.pop("attention", None)
        hyps = self.decoding.rnnt_decoder_predictions_tensor(
            outputs.pop("encoded"),
            outputs.pop("encoded_len"),
            return_hypotheses=trcfg.return_hypotheses or maps is not None,
        )
        if maps is not None:
            best = [getattr(h, "n_best_hypotheses", [h])[0] if not isinstance(h, list) else h[0] for h in hyps]
            stamps = timestamps_from_maps(self, maps, best, layer=self.cfg.decoding.get("timestamps_layer"))
            for hyp, stamp in zip(best, stamps, strict=True):
                hyp.timestamp = stamp
        return hyps

    def _setup_transcribe_dataloader(self, config: dict):
        if "manifest_filepath" in config:
            manifest_filepath, batch_size = config["manifest_filepath"], config["batch_size"]
        else:
            manifest_filepath = os.path.join(config["temp_dir"], "manifest.json")
            batch_size = min(config["batch_size"], len(config["paths2audio_files"]))
        dl_config = {
            "use_lhotse": config.get("use_lhotse", False),
            "manifest_filepath": manifest_filepath,
            "sample_rate": self.preprocessor._sample_rate,
            "batch_size": batch_size,
            "shuffle": False,
            "num_workers": config.get("num_workers", 0),
            "pin_memory": torch.cuda.is_available(),
            "channel_selector": config.get("channel_selector", None),
            "do_transcribe": True,
        }
        if config.get("augmentor"):
            dl_config["augmentor"] = config.get("augmentor")
        return self._setup_dataloader_from_config(DictConfig(dl_config))
