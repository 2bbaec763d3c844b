"""A SentencePiece Unigram tokenizer with T5's 100 sentinels, cached by corpus fingerprint.

Ids follow T5: pad 0, EOS 1, UNK 2, pieces up to vocab_size - 1, then `<extra_id_99>` ...
`<extra_id_0>` as the last 100 ids (what `T5Tokenizer.from_pretrained(folder, extra_ids=100)` gives).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from lib.corpora import is_validation, load_corpus
from lib.paths import cache_root

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
NUM_SENTINELS = 100


@dataclass(frozen=True)
class Tokenizer:
    folder: Path
    vocab_size: int  # SentencePiece pieces, sentinels excluded

    @property
    def total_vocab(self) -> int:
        return self.vocab_size + NUM_SENTINELS

    def sentinel(self, i: int) -> int:
        """Id of `<extra_id_i>`."""
        return self.total_vocab - 1 - i

    @property
    def model_file(self) -> Path:
        return self.folder / "spiece.model"

    def processor(self) -> spm.SentencePieceProcessor:
        return spm.SentencePieceProcessor(model_file=str(self.model_file))

    def hf_tokenizer(self):
        """The `transformers` T5 tokenizer over the same model (for decoding and interop)."""
        from transformers import T5Tokenizer
        return T5Tokenizer.from_pretrained(str(self.folder), extra_ids=NUM_SENTINELS)


def get_tokenizer(corpora: tuple[str, ...], vocab_size: int, sample_chars: int,
                  max_docs: int | None = None) -> Tokenizer:
    """Train (once) or load the tokenizer for these corpora and vocabulary size."""
    loaded = [load_corpus(name, max_docs) for name in corpora]
    tag = "-".join(f"{c.name}.{c.fingerprint[:8]}" for c in loaded)
    folder = cache_root() / "tokenizers" / f"{tag}-v{vocab_size}-s{sample_chars}"
    if not (folder / "spiece.model").exists():
        _train(loaded, vocab_size, sample_chars, folder)
    return Tokenizer(folder, vocab_size)


def _sample_lines(corpora, sample_chars: int):
    """Equal shares of training (non-validation) text from each corpus, in short lines."""
    share = sample_chars // len(corpora)
    for corpus in corpora:
        taken = 0
        for text in corpus.documents["text"]:
            if taken >= share:
                break
            if is_validation(text):
                continue
            taken += len(text)
            for line in text.split("\n"):
                words = line.split()
                for start in range(0, len(words), 150):  # SentencePiece skips over-long sentences
                    if chunk := " ".join(words[start:start + 150]):
                        yield chunk


def _train(corpora, vocab_size: int, sample_chars: int, folder: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent if folder.parent.exists()
                                else _mkdir(folder.parent)))
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_sample_lines(corpora, sample_chars), model_prefix=str(tmp / "spiece"),
            vocab_size=vocab_size, model_type="unigram", character_coverage=0.9995,
            pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1, num_threads=2,
            max_sentence_length=8192, minloglevel=2,
        )
        (tmp / "spiece.vocab").unlink(missing_ok=True)
        try:
            tmp.rename(folder)  # atomic: a half-trained tokenizer is never visible
        except OSError:  # another process finished first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
