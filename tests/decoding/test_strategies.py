"""The strategy table and its NeMo plumbing: config mapping, beam through the model, N-best lists."""

import json

import pytest
import torch
from nemo.collections.asr.parts.submodules.rnnt_decoding import RNNTBPEDecodingConfig, RNNTDecodingConfig
from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis, NBestHypotheses
from omegaconf import OmegaConf

from conftest import manifest_batch
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.decoding import STRATEGIES, BeamConfig, beam_search, normalize_decoding_cfg
from nemo_aligner_plugin.decoding.nemo_glue import AlignerDecodingComputer
from nemo_aligner_plugin.decoding.strategies import RNNT_BEAM_STRATEGIES


@pytest.mark.unit
def test_beam_is_a_row_of_the_table():
    assert STRATEGIES["beam"].cfg_cls is BeamConfig and STRATEGIES["beam"].fn is beam_search
    cfg = normalize_decoding_cfg({"strategy": "beam"})
    beam = OmegaConf.to_object(cfg.beam)
    assert (beam.beam_size, beam.debias) == (6, 2.0)  # the paper's defaults: width 6, debias 2/V
    assert beam == BeamConfig()


@pytest.mark.unit
@pytest.mark.parametrize("rnnt_strategy", RNNT_BEAM_STRATEGIES)
def test_rnnt_beam_configs_map_to_aligner_beam(rnnt_strategy):
    rnnt_cfg = OmegaConf.structured(RNNTDecodingConfig(strategy=rnnt_strategy))
    rnnt_cfg.beam.beam_size, rnnt_cfg.beam.return_best_hypothesis = 3, False
    cfg = normalize_decoding_cfg(rnnt_cfg)
    assert cfg.strategy == "beam" and cfg.beam.beam_size == 3 and not cfg.beam.return_best_hypothesis
    assert cfg.beam.debias == BeamConfig.debias and not cfg.beam.length_norm  # RNN-T score_norm is not carried over
    assert normalize_decoding_cfg({"strategy": rnnt_strategy}).strategy == "beam"


@pytest.mark.unit
@pytest.mark.parametrize(
    "decoding_cfg, match",
    [
        ({"strategy": "beam", "beam": {"beam_size": 0}}, "beam_size"),
        ({"strategy": "maes", "beam": {"debias": -1}}, "debias"),
    ],
)
def test_bad_beam_options_are_refused_when_normalizing(decoding_cfg, match):
    with pytest.raises(ValueError, match=match):
        normalize_decoding_cfg(decoding_cfg)


@pytest.fixture(scope="module")
def encoded(trained_nemo, tone_manifest):
    """The trained tiny model, its encoder output for the tone batch, and the reference texts."""
    model = AlignerEncoderModel.restore_from(str(trained_nemo)).eval()
    batch, texts = manifest_batch(model, tone_manifest)
    with torch.no_grad():
        encoder_out, encoder_out_lens = model(input_signal=batch[0], input_signal_length=batch[1])
    return model, encoder_out, encoder_out_lens, texts


def texts_of(model, encoder_out, encoder_out_lens) -> list[str]:
    return [h.text for h in model.decoding.rnnt_decoder_predictions_tensor(encoder_out, encoder_out_lens)]


@pytest.mark.unit
def test_beam_transcribes_like_greedy_on_the_trained_model(encoded):
    model, encoder_out, encoder_out_lens, texts = encoded
    model.change_decoding_strategy({"strategy": "greedy_batch"}, verbose=False)
    assert texts_of(model, encoder_out, encoder_out_lens) == texts
    model.change_decoding_strategy({"strategy": "beam", "beam": {"beam_size": 4}}, verbose=False)
    assert isinstance(model.decoding.decoding, AlignerDecodingComputer)
    assert model.decoding.decoding.strategy_cfg == BeamConfig(beam_size=4)
    assert texts_of(model, encoder_out, encoder_out_lens) == texts


@pytest.mark.unit
def test_rnnt_maes_config_switches_the_model_to_aligner_beam(encoded):
    model, encoder_out, encoder_out_lens, texts = encoded
    rnnt_cfg = OmegaConf.structured(RNNTBPEDecodingConfig(strategy="maes"))
    rnnt_cfg.beam.beam_size = 3
    model.change_decoding_strategy(rnnt_cfg, verbose=False)
    assert model.cfg.decoding.strategy == "beam" and model.cfg.decoding.beam.beam_size == 3
    assert isinstance(model.decoding.decoding, AlignerDecodingComputer)
    assert model.decoding.decoding.strategy_cfg.beam_size == 3
    assert texts_of(model, encoder_out, encoder_out_lens) == texts


@pytest.mark.unit
def test_nbest_lists_flow_through_nemo_decoding_and_transcribe(encoded, tone_manifest):
    model, encoder_out, encoder_out_lens, texts = encoded
    model.change_decoding_strategy(
        {"strategy": "beam", "beam": {"beam_size": 4, "return_best_hypothesis": False}}, verbose=False
    )
    (raw,) = model.decoding.decoding(encoder_out, encoder_out_lens)
    assert all(isinstance(h, NBestHypotheses) for h in raw)
    nbest = model.decoding.rnnt_decoder_predictions_tensor(encoder_out, encoder_out_lens, return_hypotheses=True)
    assert len(nbest) == len(texts)
    for hyps, text in zip(nbest, texts, strict=True):
        assert 1 <= len(hyps) <= 4 and all(isinstance(h, Hypothesis) for h in hyps)
        assert hyps[0].text == text
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.y_sequence.tolist()) for h in hyps}) == len(hyps)  # distinct without path merging
    files = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()]
    transcribed = model.transcribe(files, batch_size=4, return_hypotheses=True, verbose=False)
    assert [hyps[0].text for hyps in transcribed] == texts
