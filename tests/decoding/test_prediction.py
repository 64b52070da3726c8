"""The fast one-step prediction network equals NeMo's RNNTDecoder.predict."""

import pytest
import torch
from nemo.collections.asr.modules import RNNTDecoder

from nemo_aligner_plugin.decoding.prediction import prediction_step


@pytest.mark.unit
@pytest.mark.parametrize("layers", [1, 2])
def test_prediction_step_matches_decoder_predict(layers):
    torch.manual_seed(0)
    decoder = RNNTDecoder(prednet={"pred_hidden": 16, "pred_rnn_layers": layers}, vocab_size=10).eval()
    tokens = torch.tensor([3, 10, 0, 7])  # 10 = blank/EOS: the start-of-sequence embedding (zeros)
    state = tuple(torch.randn(layers, 4, 16) for _ in range(2))
    with torch.no_grad():
        ours, (h, c) = prediction_step(decoder, tokens, state, 4)
        ref, (h_ref, c_ref) = decoder.predict(tokens.unsqueeze(1), state=state, add_sos=False, batch_size=4)
        start, _ = prediction_step(decoder, None, None, 4)  # start of sequence: zero input, zero state
        start_ref, _ = decoder.predict(None, state=None, add_sos=False, batch_size=4)
    assert torch.allclose(ours, ref, atol=1e-6) and torch.allclose(h, h_ref, atol=1e-6)
    assert torch.allclose(c, c_ref, atol=1e-6) and torch.allclose(start, start_ref, atol=1e-6)
