"""Train a SentencePiece BPE tokenizer in the directory layout NeMo's ``ASRBPEMixin`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

__all__ = ["train_bpe_tokenizer"]


def train_bpe_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int) -> Path:
    """Write ``tokenizer.model``, ``tokenizer.vocab`` and ``vocab.txt`` to ``out_dir``; return it.

    BOS/EOS are disabled: the aligner appends its own EOS (the RNN-T blank slot).
    """
    import sentencepiece as spm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sentences = [t.strip() for t in texts if t.strip()]
    if not sentences:
        raise ValueError("train_bpe_tokenizer: no non-empty text to train on")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(out_dir / "tokenizer"),
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        hard_vocab_limit=False,  # tiny corpora may not support the requested size exactly
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model"))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    (out_dir / "vocab.txt").write_text("".join(f"{p}\n" for p in pieces))
    return out_dir
