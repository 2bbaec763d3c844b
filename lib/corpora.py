"""Named corpora -> documents, through `datasets` for both local shards and the Hugging Face Hub.

Local corpora are folders of JSONL(.gz) shards under `REPEAT_CORPORA` (default `../shared/corpora`
next to the repository), read with the `json` builder. Hub corpora (`c4`, `wikipedia-hub`) are
read with streaming when a document limit is given, for users who have access.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import datasets

from lib.paths import cache_root, repo_root

LOCAL_CORPORA = ("web", "wikipedia")
HUB_CORPORA = {  # name -> (Hub path, config)
    "c4": ("allenai/c4", "en"),
    "wikipedia-hub": ("wikimedia/wikipedia", "20231101.en"),
}
VALIDATION_PER_MYRIAD = 100  # 1 % of documents, chosen by a hash of their text


@dataclass(frozen=True)
class Corpus:
    name: str
    source: str  # where the documents came from, for the record
    fingerprint: str  # changes whenever the documents could change
    documents: datasets.Dataset  # a "text" column


def corpora_root() -> Path:
    return Path(os.environ.get("REPEAT_CORPORA", repo_root().parent / "shared" / "corpora")).resolve()


def is_validation(text: str) -> bool:
    """Validation documents are picked by a hash of their text: stable, and disjoint from training."""
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < VALIDATION_PER_MYRIAD


def load_corpus(name: str, max_docs: int | None = None) -> Corpus:
    """Documents of a named corpus (the first `max_docs` of them, if given)."""
    if name in LOCAL_CORPORA:
        return _load_local(name, max_docs, corpora_root())
    if name in HUB_CORPORA:
        return _load_hub(name, max_docs)
    raise ValueError(f"unknown corpus {name!r}; local: {list(LOCAL_CORPORA)}, "
                     f"Hugging Face Hub: {list(HUB_CORPORA)}")


def local_shards(name: str) -> list[Path]:
    folder = corpora_root() / name
    shards = sorted(folder.glob("*.jsonl.gz")) + sorted(folder.glob("*.jsonl"))
    if not shards:
        raise FileNotFoundError(
            f"no JSONL(.gz) shards for corpus {name!r} in {folder}. Point the environment variable "
            f"REPEAT_CORPORA at the folder that holds '{name}/' (default: ../shared/corpora).")
    return shards


@functools.lru_cache(maxsize=8)
def _load_local(name: str, max_docs: int | None, root: Path) -> Corpus:
    """Read (and fingerprint) a local corpus once per process; `root` keys the cache."""
    shards = local_shards(name)
    hasher = hashlib.sha256(f"{name}|{max_docs}".encode())
    for shard in shards:
        hasher.update(shard.name.encode())
        hasher.update(hashlib.sha256(shard.read_bytes()).digest())
    fingerprint = hasher.hexdigest()[:16]
    if max_docs is None:
        docs = datasets.load_dataset("json", data_files=[str(s) for s in shards], split="train",
                                     cache_dir=str(cache_root() / "hf_datasets"))
        docs = docs.select_columns(["text"])
    else:
        stream = datasets.load_dataset("json", data_files=[str(s) for s in shards], split="train",
                                       streaming=True)
        docs = take_documents(stream, max_docs)
    return Corpus(name, f"local:{corpora_root() / name}", fingerprint, docs)


def take_documents(stream, max_docs: int) -> datasets.Dataset:
    """The first `max_docs` documents of a streaming dataset, as an in-memory `Dataset`."""
    texts = [row["text"] for row in itertools.islice(stream, max_docs)]
    return datasets.Dataset.from_dict({"text": texts})


def _load_hub(name: str, max_docs: int | None) -> Corpus:
    path, config = HUB_CORPORA[name]
    _check_hub_reachable(path)
    if max_docs is None:
        docs = datasets.load_dataset(path, config, split="train",
                                     cache_dir=str(cache_root() / "hf_datasets")).select_columns(["text"])
    else:
        docs = take_documents(datasets.load_dataset(path, config, split="train", streaming=True), max_docs)
    fingerprint = hashlib.sha256(f"{path}|{config}|{max_docs}|{len(docs)}".encode()).hexdigest()[:16]
    return Corpus(name, f"hub:{path}/{config}", fingerprint, docs)


def _check_hub_reachable(path: str, timeout: float = 5.0) -> None:
    """Fail fast, with a clear message, instead of hanging when the Hub cannot be reached."""
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    try:
        if offline:
            raise OSError("HF_HUB_OFFLINE is set")
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
    except OSError as error:
        raise ConnectionError(
            f"cannot reach the Hugging Face Hub for {path!r} ({error}). Hub corpora need network "
            f"access; offline, use a local corpus ({', '.join(LOCAL_CORPORA)}) from REPEAT_CORPORA."
        ) from error
