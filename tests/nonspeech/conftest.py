"""The tiny aligner of tests/conftest.py trained on the tone corpus with ``model.nonspeech`` rows.

A package (``__init__.py``), so that this conftest does not take the module name ``conftest`` from tests/conftest.py,
which test modules import by that name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import manifest_batch, tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel

# A quarter of each batch's rows digital silence or white noise at -70..-30 dBFS, 0.3 s to the batch's longest row.
NONSPEECH = {"fraction": 0.25, "kinds": ["silence", "white"], "min_seconds": 0.3}
# Steps of the fixed training run: the tones read right from step ~50, silence and noise give nothing from ~50 on.
TRAIN_STEPS = 150


def train_with_nonspeech(model: AlignerEncoderModel, batch: tuple, steps: int) -> None:
    """``steps`` AdamW steps on one batch through the training step's own augmentation (``model.nonspeech`` rows
    replaced first, with the digital-silence rows given inference-mode features by ``model.forward``)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        audio, audio_lens, tokens, token_lens = model.augmentation(*batch, step)
        encoded, encoded_len = model(input_signal=audio, input_signal_length=audio_lens)
        loss = model.compute_loss(encoded, encoded_len, tokens, token_lens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


@pytest.fixture(scope="session")
def quiet_nemo(tmp_path_factory, tokenizer_dir, tone_manifest) -> Path:
    """The tiny aligner trained ``TRAIN_STEPS`` steps with ``model.nonspeech`` on the 8 tone utterances, as .nemo
    (about 7 s on one CPU thread)."""
    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"nonspeech": NONSPEECH}).model)
    batch, _ = manifest_batch(model, tone_manifest)
    train_with_nonspeech(model, batch, TRAIN_STEPS)
    path = tmp_path_factory.mktemp("quiet") / "tiny_quiet_aligner.nemo"
    model.save_to(str(path))
    return path


@pytest.fixture
def quiet_model(quiet_nemo) -> AlignerEncoderModel:
    """A fresh copy of the trained model per test (tests change its long-form and decoding settings)."""
    return AlignerEncoderModel.restore_from(str(quiet_nemo)).eval()
