"""Tokenize a corpus once into memory-mapped arrays under `data_cache/tokens/`.

Each store folder holds `tokens.npy` (all documents, each followed by EOS), `offsets.npy`
(document i spans tokens[offsets[i]:offsets[i+1]]) and `is_validation.npy` (the held-out flag,
from a hash of the document's text).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib import quiet
from lib.config import DataConfig
from lib.corpora import is_validation, load_corpus
from lib.paths import cache_root
from lib.tokenizer import EOS_ID, Tokenizer, get_tokenizer


@dataclass(frozen=True)
class TokenStore:
    folder: Path
    corpus: str
    source: str
    fingerprint: str
    tokenizer: Tokenizer
    tokens: np.ndarray  # memory-mapped
    offsets: np.ndarray
    is_validation: np.ndarray

    def document_ids(self, validation: bool) -> np.ndarray:
        return np.flatnonzero(self.is_validation == validation)

    def count_tokens(self, doc_ids: np.ndarray) -> int:
        return int((self.offsets[doc_ids + 1] - self.offsets[doc_ids]).sum())

    def training_order(self, subset_seed: int) -> np.ndarray:
        """The training documents in one seeded order: every nested subset is a prefix of it."""
        return np.random.default_rng(subset_seed).permutation(self.document_ids(validation=False))

    def training_stream(self, subset_seed: int, max_tokens: int) -> np.ndarray:
        """The first `max_tokens` tokens of the training documents in their seeded order."""
        return self.concatenate(self.training_order(subset_seed), max_tokens)

    def training_token_count(self) -> int:
        return self.count_tokens(self.document_ids(validation=False))

    def validation_stream(self, max_tokens: int) -> np.ndarray:
        """The first `max_tokens` tokens of the held-out documents, in corpus order."""
        return self.concatenate(self.document_ids(validation=True), max_tokens)

    def concatenate(self, doc_ids: np.ndarray, max_tokens: int | None = None) -> np.ndarray:
        """Tokens of these documents in this order (stopping once `max_tokens` are gathered)."""
        pieces, total = [], 0
        for i in doc_ids:
            piece = self.tokens[self.offsets[i]:self.offsets[i + 1]]
            pieces.append(piece)
            total += len(piece)
            if max_tokens is not None and total >= max_tokens:
                break
        out = np.concatenate(pieces) if pieces else np.zeros(0, self.tokens.dtype)
        return out if max_tokens is None else out[:max_tokens]


class _Encoder:
    """Picklable batch encoder for `datasets.map` worker processes."""

    def __init__(self, model_file: str):
        self.model_file = model_file
        self._sp = None

    def __call__(self, batch):
        if self._sp is None:
            import sentencepiece as spm
            self._sp = spm.SentencePieceProcessor(model_file=self.model_file)
        ids = self._sp.encode(batch["text"])
        return {"ids": [x + [EOS_ID] for x in ids],
                "validation": [is_validation(t) for t in batch["text"]]}


def token_store(data: DataConfig) -> TokenStore:
    """The tokenized corpus a data config trains on: built on first use, then memory-mapped."""
    quiet.silence_datasets()
    tokenizer = get_tokenizer(data.tokenizer_corpora, data.vocab_size, data.tokenizer_sample_chars,
                              data.max_docs)
    corpus = load_corpus(data.corpus, data.max_docs)
    folder = cache_root() / "tokens" / f"{corpus.name}.{corpus.fingerprint[:8]}-{tokenizer.folder.name}"
    if not (folder / "meta.json").exists():
        build_token_store(corpus, tokenizer, folder)
    meta = json.loads((folder / "meta.json").read_text())
    return TokenStore(folder, corpus.name, corpus.source, corpus.fingerprint, tokenizer,
                      np.load(folder / "tokens.npy", mmap_mode="r"),
                      np.load(folder / "offsets.npy"), np.load(folder / "is_validation.npy"))


def build_token_store(corpus, tokenizer: Tokenizer, folder: Path, num_proc: int | None = None) -> dict:
    """Tokenize every document (batched `datasets.map` over the cores); write atomically."""
    start = time.perf_counter()
    num_proc = num_proc or min(2, os.cpu_count() or 1)
    encoded = corpus.documents.map(_Encoder(str(tokenizer.model_file)), batched=True, batch_size=256,
                                   num_proc=num_proc if len(corpus.documents) > 1000 else None,
                                   remove_columns=corpus.documents.column_names,
                                   desc=f"tokenizing {corpus.name}")
    ids = encoded.data.column("ids").combine_chunks()
    dtype = np.uint16 if tokenizer.total_vocab < 2**16 else np.uint32
    tokens = ids.values.to_numpy().astype(dtype)
    offsets = ids.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    flags = np.asarray(encoded.data.column("validation").to_pylist(), dtype=bool)
    meta = {"corpus": corpus.name, "source": corpus.source, "fingerprint": corpus.fingerprint,
            "documents": len(flags), "tokens": int(len(tokens)),
            "characters": int(sum(len(t) for t in corpus.documents["text"])),
            "seconds": round(time.perf_counter() - start, 2)}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        np.save(tmp / "tokens.npy", tokens)
        np.save(tmp / "offsets.npy", offsets)
        np.save(tmp / "is_validation.npy", flags)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            tmp.rename(folder)
        except OSError:  # built concurrently by another process
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta
