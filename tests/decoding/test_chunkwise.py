"""Chunk-by-chunk greedy decoding equals an independent per-utterance reference, and streaming equals offline."""

import pytest
import torch

from conftest import random_decoder_joint
from nemo_aligner_plugin.decoding.chunkwise import ChunkwiseGreedyConfig, chunkwise_greedy

VOCAB, ENC_DIM, HIDDEN = 12, 16, 20
EOC = VOCAB


@torch.no_grad()
def reference_decode(decoder, joint, encoder_out, length, chunk, max_labels):
    """One utterance: in each chunk read slot j (frame chunk_start + j) with the whole prefix re-fed, until EOC
    or the chunk's slots run out; every step recomputes the prediction network from scratch."""
    tokens, frames, score, ended = [], [], 0.0, False
    for start in range(0, length, chunk):
        slots = min(chunk, max_labels, length - start)
        ended = False
        for j in range(slots):
            prefix = torch.tensor([tokens], dtype=torch.long).reshape(1, len(tokens))
            pred_out, _ = decoder.predict(prefix, state=None, add_sos=True, batch_size=1)
            frame = joint.project_encoder(encoder_out[None, start + j : start + j + 1])  # (1, 1, J)
            logits = joint.joint_net(frame + joint.project_prednet(pred_out[:, -1:]))
            log_probs = torch.log_softmax(logits[0, 0].float(), dim=-1)
            best = int(log_probs.argmax())
            score += float(log_probs[best])
            if best == EOC:
                ended = True
                break
            tokens.append(best)
            frames.append(start + j)
    return tokens, frames, score, ended


@pytest.mark.unit
@pytest.mark.parametrize(("chunk", "max_labels", "eos_bias"), [(4, 4, 1.0), (5, 3, 0.5), (3, 3, -100.0), (16, 16, 2.0)])
def test_chunkwise_greedy_equals_reference(chunk, max_labels, eos_bias):
    decoder, joint = random_decoder_joint(VOCAB, ENC_DIM, HIDDEN, eos_bias=eos_bias)
    torch.manual_seed(chunk * 10 + max_labels)
    encoder_out = torch.randn(5, 23, ENC_DIM)
    lengths = torch.tensor([23, 17, 4, 1, 9])
    cfg = ChunkwiseGreedyConfig(chunk_size=chunk, max_labels_per_chunk=max_labels)
    hyps, _ = chunkwise_greedy(decoder, joint, encoder_out, lengths, EOC, cfg)
    for b in range(5):
        tokens, frames, score, ended = reference_decode(
            decoder, joint, encoder_out[b], int(lengths[b]), chunk, max_labels
        )
        assert hyps.tokens[b, : hyps.lengths[b]].tolist() == tokens
        assert hyps.frames[b, : hyps.lengths[b]].tolist() == frames
        assert hyps.scores[b].item() == pytest.approx(score, abs=1e-4)
        assert bool(hyps.ended_with_eos[b]) == ended


@pytest.mark.unit
def test_reference_sees_both_chunk_endings():
    """Guard for the test above: with this bias some chunks end with EOC and some run out of slots."""
    decoder, joint = random_decoder_joint(VOCAB, ENC_DIM, HIDDEN, eos_bias=1.0)
    torch.manual_seed(3)
    encoder_out = torch.randn(1, 40, ENC_DIM)
    cfg = ChunkwiseGreedyConfig(chunk_size=4)
    hyps, _ = chunkwise_greedy(decoder, joint, encoder_out, torch.tensor([40]), EOC, cfg)
    per_chunk = torch.bincount(hyps.frames[0, : hyps.lengths[0]] // 4, minlength=10)
    assert (per_chunk == 4).any() and (per_chunk < 4).any()


@pytest.mark.unit
@pytest.mark.parametrize("pieces", [[8], [4, 4], [4, 2, 2], [2, 2, 2, 2]])
def test_decoding_in_pieces_with_the_state_carried_equals_one_call(pieces):
    """Streaming feeds one chunk (or a few) per call; whole chunks per call give the offline tokens."""
    chunk = 3
    decoder, joint = random_decoder_joint(VOCAB, ENC_DIM, HIDDEN, eos_bias=1.0)
    torch.manual_seed(11)
    encoder_out = torch.randn(1, 8 * chunk - 1, ENC_DIM)  # the last chunk is partial
    cfg = ChunkwiseGreedyConfig(chunk_size=chunk)
    whole, _ = chunkwise_greedy(decoder, joint, encoder_out, torch.tensor([encoder_out.size(1)]), EOC, cfg)
    tokens, state, start = [], None, 0
    for num_chunks in pieces:
        piece = encoder_out[:, start : start + num_chunks * chunk]
        hyps, state = chunkwise_greedy(decoder, joint, piece, torch.tensor([piece.size(1)]), EOC, cfg, state)
        tokens += hyps.tokens[0, : hyps.lengths[0]].tolist()
        start += piece.size(1)
    assert tokens == whole.tokens[0, : whole.lengths[0]].tolist()


@pytest.mark.unit
def test_max_tokens_caps_and_empty_input_keeps_the_start_state():
    decoder, joint = random_decoder_joint(VOCAB, ENC_DIM, HIDDEN, eos_bias=-100.0)
    cfg = ChunkwiseGreedyConfig(chunk_size=4, max_tokens=5)
    hyps, _ = chunkwise_greedy(decoder, joint, torch.randn(2, 12, ENC_DIM), torch.tensor([12, 3]), EOC, cfg)
    assert hyps.lengths.tolist() == [5, 3]
    empty, state = chunkwise_greedy(
        decoder, joint, torch.randn(2, 0, ENC_DIM), torch.tensor([0, 0]), EOC, ChunkwiseGreedyConfig(chunk_size=4)
    )
    assert empty.lengths.tolist() == [0, 0] and state.last_tokens.tolist() == [EOC, EOC]


@pytest.mark.unit
def test_missing_chunk_size_is_refused():
    decoder, joint = random_decoder_joint(VOCAB, ENC_DIM, HIDDEN, eos_bias=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        chunkwise_greedy(decoder, joint, torch.randn(1, 4, ENC_DIM), torch.tensor([4]), EOC, ChunkwiseGreedyConfig())
