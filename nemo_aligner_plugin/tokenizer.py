"""Train a SentencePiece BPE tokenizer in the directory layout NeMo's ``ASRBPEMixin`` reads.

Same layout as NeMo's process_asr_text_tokenizer.py: ``tokenizer.model``, ``tokenizer.vocab`` and
``vocab.txt`` (word-initial pieces bare, others ``##``-prefixed). BOS/EOS are disabled: the aligner
appends its own EOS (the RNN-T blank slot).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

__all__ = ["train_bpe_tokenizer", "write_tokenizer_dir"]

_SPECIAL = {"<s>", "</s>", "<pad>", "<unk>"}


def train_bpe_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int) -> int:
    """Train on ``texts``, write the tokenizer files to ``out_dir`` and return the actual vocab size.

    Trains into memory so that no file path is baked into the model proto: the same texts give a
    byte-identical ``tokenizer.model``. As in NeMo, ``hard_vocab_limit=False`` lets tiny corpora
    end up with fewer pieces than asked for.
    """
    import sentencepiece as spm

    sentences = [t.strip() for t in texts if t.strip()]
    if not sentences:
        raise ValueError("train_bpe_tokenizer: no non-empty text to train on")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=buf,
            vocab_size=vocab_size,
            model_type="bpe",
            character_coverage=1.0,
            bos_id=-1,
            eos_id=-1,
            unk_id=0,
            hard_vocab_limit=False,
            shuffle_input_sentence=False,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as err:
        raise ValueError(f"SentencePiece training failed for vocab_size={vocab_size}: {err}") from err
    return write_tokenizer_dir(buf.getvalue(), out_dir)


def write_tokenizer_dir(model_proto: bytes, out_dir: str | Path) -> int:
    """Write a SentencePiece model proto as a NeMo tokenizer dir; return its vocabulary size.

    Also used to export the tokenizer of a restored model, whose original files lived in a temporary
    directory that no longer exists.
    """
    import sentencepiece as spm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.model").write_bytes(model_proto)
    processor = spm.SentencePieceProcessor(model_proto=model_proto)
    vocab_lines, pieces = [], []
    for i in range(processor.get_piece_size()):
        piece = processor.id_to_piece(i)
        vocab_lines.append(f"{piece}\t{processor.get_score(i):g}\n")
        if piece in _SPECIAL:
            continue
        token = piece[1:] if piece.startswith("\u2581") else f"##{piece}"
        pieces.append(token or piece[0])
    (out_dir / "tokenizer.vocab").write_text("".join(vocab_lines), encoding="utf-8")
    (out_dir / "vocab.txt").write_text("".join(p + "\n" for p in pieces), encoding="utf-8")
    return processor.get_piece_size()
