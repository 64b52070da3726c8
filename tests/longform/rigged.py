"""Shared fixtures-by-hand of the long-form tests: a tiny model whose joint is rigged so that EOS fires exactly at
frames we mark (encoder dim 0 set to 1), a step-by-step reference decoder, and noise 'speech' with pauses.

N: chunks, C: frames per chunk, D: encoder dim.
"""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import OmegaConf

from conftest import SAMPLE_RATE, tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.modules.joint import joint_step

CHUNK = 12  # frames per chunk in the decoding tests
# (chunk lengths, frames within each chunk where EOS is forced): EOS mid-chunk, at a chunk's first frame
# (the chunk emits nothing), never (the chunk runs out of frames), a short last chunk, and chunks that emit fewer
# tokens than prime mode feeds.
UTTERANCES = [
    ([12, 12, 12, 7], [[8], [0], [], [5]]),
    ([12, 5], [[3], []]),
    ([12, 12, 12], [[0], [10], [6]]),
    ([12, 12, 12], [[2], [1], [4]]),  # short histories: 2 then 3 tokens before the second and third chunk
]


def make_rigged_model(tokenizer_dir) -> AlignerEncoderModel:
    """Random tiny model; joint hidden unit 0 copies encoder dim 0 and votes for EOS only, and nothing else does."""
    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model).eval()
    with torch.no_grad():
        enc, pred, out = model.joint.enc, model.joint.pred, model.joint.joint_net[-1]
        enc.weight[0].zero_()
        enc.weight[0, 0] = 1.0
        enc.bias[0] = 0.0
        pred.weight[0].zero_()
        pred.bias[0] = 0.0
        pred.weight.mul_(10.0)  # make the prediction-network state matter for the token choice
        out.weight[:, 0] = 0.0
        out.weight[model.eos_id].zero_()
        out.weight[model.eos_id, 0] = 1000.0
        out.bias[model.eos_id] = -50.0
    return model


def rigged_chunks(lengths: list[int], eos_frames: list[list[int]], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random chunks (N, C, D) with dim 0 = 0, except 1 at the frames where EOS must fire."""
    gen = torch.Generator().manual_seed(seed)
    chunks = torch.randn(len(lengths), CHUNK, 64, generator=gen)
    chunks[:, :, 0] = 0.0
    for n, (length, marks) in enumerate(zip(lengths, eos_frames, strict=True)):
        chunks[n, length:] = 0.0
        chunks[n, marks, 0] = 1.0
    return chunks, torch.tensor(lengths)


def reference_decode(model, chunks, lens, mode: str, prime_tokens: int = 0) -> tuple[list[int], list[int], float]:
    """Step-by-step greedy, one frame and one token at a time, with the chunk-start rule written out.

    Returns tokens, their global frames and the summed log-probabilities (EOS included).
    """
    decoder, joint = model.decoder, model.joint
    tokens, frames, offset, carried, score = [], [], 0, None, 0.0
    with torch.no_grad():
        for n in range(chunks.size(0)):
            history = tokens[max(0, len(tokens) - prime_tokens) :] if prime_tokens else []  # all, if fewer
            if mode == "carry_state" and carried is not None:
                g, state = carried
            elif mode == "prime" and history:
                g, state = decoder.predict(torch.tensor([history]), state=None, add_sos=True)
            else:
                g, state = decoder.predict(None, state=None, add_sos=False, batch_size=1)
            for i in range(int(lens[n])):
                logits = joint_step(joint, joint.project_encoder(chunks[n, i : i + 1]), g[:, -1])
                token = int(logits.argmax(-1))
                score += float(logits.log_softmax(-1)[0, token])
                if token == model.eos_id:
                    break
                tokens.append(token)
                frames.append(offset + i)
                g, state = decoder.predict(torch.tensor([[token]]), state=state, add_sos=False)
            carried = (g, state)
            offset += int(lens[n])
    return tokens, frames, score


def forced_frames(lengths: list[int], eos_frames: list[list[int]]) -> list[int]:
    """Global frames that emit a token: each chunk from its first frame up to its first EOS mark or its end."""
    frames, offset = [], 0
    for length, marks in zip(lengths, eos_frames, strict=True):
        frames += range(offset, offset + min(marks, default=length))
        offset += length
    return frames


def with_beam(model: AlignerEncoderModel, **beam) -> AlignerEncoderModel:
    """Switch the model to beam search with the config's ``decoding.beam`` plus ``beam``."""
    cfg = OmegaConf.to_container(model.cfg.decoding)
    model.change_decoding_strategy({**cfg, "strategy": "beam", "beam": {**cfg["beam"], **beam}}, verbose=False)
    return model


def tiny_model_and_two_pauses(tokenizer_dir, reverse: bool, last_seconds: float):
    """A random tiny model and noise 'speech' 1.2 s, silence 0.6 s, speech 1.5 s, silence 0.5 s, speech (B=1, S)."""
    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"reverse_audio": reverse}).model).eval()
    rng = np.random.default_rng(0)
    speech = lambda seconds: 0.3 * rng.standard_normal(int(seconds * SAMPLE_RATE))  # noqa: E731
    silence = lambda seconds: 1e-4 * rng.standard_normal(int(seconds * SAMPLE_RATE))  # noqa: E731
    audio = np.concatenate([speech(1.2), silence(0.6), speech(1.5), silence(0.5), speech(last_seconds)])
    return model, torch.from_numpy(audio.astype(np.float32))[None]
