"""Named corpora -> documents, through `datasets` for both local shards and the Hugging Face Hub.

A local corpus is a folder `<REPEAT_CORPORA>/<name>/` of JSON Lines shards (`*.jsonl.gz` or `*.jsonl`,
one `{"text": ..., "source": ...}` object per line). `REPEAT_CORPORA` defaults to `data/corpora/` in
the repository (ignored by git); `data/fixtures/` holds a small redistributable corpus that the tests
and the smoke profile read. The Hub corpora (`c4`, `wikipedia-hub`) are read from their local folder
when there is one (`python -m lib.corpora prepare --out DIR` writes them), else from the Hub.
`datasets` is imported only where documents are read, so that `lib.corpora` imports without it.
"""
from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import itertools
import json
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lib.paths import cache_root, repo_root

if TYPE_CHECKING:
    import datasets

LOCAL_CORPORA = ("web", "wikipedia")
VALIDATION_PER_MYRIAD = 100  # 1 % of documents, chosen by a hash of their text
SHARD_PATTERNS = ("*.jsonl.gz", "*.jsonl")
DOCS_PER_SHARD = 10_000  # what `prepare` writes per shard
PREPARE_DOCS = 100_000  # `prepare`'s default number of documents per corpus


class CorpusError(ValueError):
    """A corpus folder that is missing, holds no shards or holds shards in another format."""


@dataclass(frozen=True)
class DatasetSource:
    """Where `datasets` streams a corpus from: a Hub dataset and config, or a builder ("json",
    "parquet") over local `data_files` (the same code path, offline)."""

    path: str
    config: str | None = None
    data_files: tuple[str, ...] = ()

    @property
    def on_hub(self) -> bool:
        return not self.data_files

    @property
    def label(self) -> str:
        return f"{self.path}/{self.config}" if self.config else self.path

    def load(self, streaming: bool):
        import datasets

        if self.on_hub:
            _check_hub_reachable(self.path)
        return datasets.load_dataset(self.path, self.config, data_files=list(self.data_files) or None,
                                     split="train", streaming=streaming,
                                     cache_dir=None if streaming else str(cache_root() / "hf_datasets"))


HUB_CORPORA = {
    "c4": DatasetSource("allenai/c4", "en"),
    "wikipedia-hub": DatasetSource("wikimedia/wikipedia", "20231101.en"),
}


@dataclass(frozen=True)
class Corpus:
    name: str
    source: str  # where the documents came from, for the record
    fingerprint: str  # changes whenever the documents could change
    documents: datasets.Dataset  # a "text" column


def corpora_root() -> Path:
    return Path(os.environ.get("REPEAT_CORPORA", repo_root() / "data" / "corpora")).resolve()


def fixture_root() -> Path:
    """The small corpus committed with the repository (tests and the smoke profile)."""
    return repo_root() / "data" / "fixtures"


def is_validation(text: str) -> bool:
    """Validation documents are picked by a hash of their text: stable, and disjoint from training."""
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < VALIDATION_PER_MYRIAD


def load_corpus(name: str, max_docs: int | None = None) -> Corpus:
    """Documents of a named corpus (the first `max_docs` of them, if given)."""
    if name not in LOCAL_CORPORA and name not in HUB_CORPORA:
        raise ValueError(f"unknown corpus {name!r}; local: {list(LOCAL_CORPORA)}, "
                         f"Hugging Face Hub (or a local folder written by `prepare`): {list(HUB_CORPORA)}")
    root = corpora_root()
    if name in HUB_CORPORA and not (root / name).is_dir():
        return _load_hub(name, max_docs)
    return _load_local(name, max_docs, root)


def local_shards(name: str, root: Path | None = None) -> list[Path]:
    """The shards of a local corpus, each checked to open as JSON Lines of {"text": ...} objects."""
    root = root or corpora_root()
    folder = root / name
    expected = f"expected {folder}/ holding JSON Lines shards ({' or '.join(SHARD_PATTERNS)})"
    hint = ("set REPEAT_CORPORA to the folder that holds your corpora (data/fixtures holds small ones; "
            "README.md, section Data, says where to get the full ones)")
    if not root.is_dir():
        raise CorpusError(f"corpora folder {root} does not exist: {expected}; {hint}")
    if not folder.is_dir():
        raise CorpusError(f"no corpus {name!r} in {root}: {expected}; {hint}")
    shards = [shard for pattern in SHARD_PATTERNS for shard in sorted(folder.glob(pattern))]
    if not shards:
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:5]) or "nothing"
        raise CorpusError(f"no shards in {folder} (found: {found}): {expected}; {hint}")
    for shard in shards:
        _check_shard(shard)
    return shards


def _check_shard(shard: Path) -> None:
    """Raise unless the shard's first line is a JSON object with a string "text"."""
    compressed = shard.name.endswith(".gz")
    try:
        with _open_text(shard) as f:
            row = json.loads(f.readline())
        valid = isinstance(row, dict) and isinstance(row.get("text"), str)
    except (OSError, EOFError, UnicodeDecodeError, ValueError):
        valid = False
    if not valid:
        raise CorpusError(f"{shard} is not in the shard format: expected {'gzip-compressed ' if compressed else ''}"
                          'UTF-8 JSON Lines, one {"text": "...", "source": "..."} object per line')


@functools.lru_cache(maxsize=8)
def _load_local(name: str, max_docs: int | None, root: Path) -> Corpus:
    """Read (and fingerprint) a local corpus once per process; `root` keys the cache."""
    shards = local_shards(name, root)
    hasher = hashlib.sha256(f"{name}|{max_docs}".encode())
    for shard in shards:
        hasher.update(shard.name.encode())
        hasher.update(hashlib.sha256(shard.read_bytes()).digest())
    fingerprint = hasher.hexdigest()[:16]
    local = DatasetSource("json", data_files=tuple(str(s) for s in shards))
    if max_docs is None:
        docs = local.load(streaming=False).select_columns(["text"])
    else:
        docs = take_documents(local.load(streaming=True), max_docs)
    return Corpus(name, f"local:{root / name}", fingerprint, docs)


def take_documents(stream, max_docs: int) -> datasets.Dataset:
    """The first `max_docs` documents of a streaming dataset, as an in-memory `Dataset`."""
    import datasets

    texts = [row["text"] for row in itertools.islice(stream, max_docs)]
    return datasets.Dataset.from_dict({"text": texts})


def _load_hub(name: str, max_docs: int | None) -> Corpus:
    source = HUB_CORPORA[name]
    if max_docs is None:
        docs = source.load(streaming=False).select_columns(["text"])
    else:
        docs = take_documents(source.load(streaming=True), max_docs)
    fingerprint = hashlib.sha256(f"{source.path}|{source.config}|{max_docs}|{len(docs)}".encode()).hexdigest()[:16]
    return Corpus(name, f"hub:{source.label}", fingerprint, docs)


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


# --- writing shards ------------------------------------------------------------------------------

def write_shard(path: Path, rows: Iterable[dict]) -> None:
    """One gzip JSON Lines shard, written to `<path>.partial` and renamed into place; the same rows
    always give the same bytes (no name or time stamp in the gzip header)."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            for row in rows:
                gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(partial, path)


def read_rows(shards: Iterable[Path]) -> Iterator[dict]:
    """Every row of these JSON Lines shards, in order."""
    for shard in shards:
        with _open_text(shard) as f:
            yield from map(json.loads, f)


def _open_text(shard: Path):
    return (gzip.open if shard.name.endswith(".gz") else open)(shard, "rt", encoding="utf-8")


def prepare(out: Path, docs: int = PREPARE_DOCS, resume: bool = False,
            sources: dict[str, DatasetSource] = HUB_CORPORA, docs_per_shard: int = DOCS_PER_SHARD,
            progress: bool = True) -> dict[str, int]:
    """Write the first `docs` documents of each source as `out/<name>/train-NNNNN.jsonl.gz`.

    Shards are written atomically, so `resume=True` continues an interrupted prepare (with the same
    `docs`) after its last whole shard. Rows with a `title` (Wikipedia) get it as their first line,
    as in the local `wikipedia` corpus. Returns the documents written per corpus.
    """
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise CorpusError(f"{out} is not empty: prepare writes into a new or empty folder; "
                          "pass --resume to continue an interrupted prepare there")
    for source in sources.values():
        if source.on_hub:
            _check_hub_reachable(source.path)
    return {name: _prepare_one(name, source, out / name, docs, docs_per_shard, progress)
            for name, source in sources.items()}


def _prepare_one(name: str, source: DatasetSource, folder: Path, docs: int, docs_per_shard: int,
                 progress: bool) -> int:
    from tqdm.auto import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    for partial in folder.glob("*.partial"):
        partial.unlink()
    shards = sorted(folder.glob("train-*.jsonl.gz"))
    done = sum(1 for _ in read_rows(shards))
    if done >= docs or done % docs_per_shard:  # a short last shard: the stream had ended
        return done
    rows = itertools.islice(source.load(streaming=True).skip(done), docs - done)
    with tqdm(total=docs, initial=done, desc=f"{name} ({source.label})", unit=" docs", disable=not progress) as bar:
        for index in itertools.count(len(shards)):
            batch = [_document(row, source) for row in itertools.islice(rows, docs_per_shard)]
            if not batch:
                break
            write_shard(folder / f"train-{index:05d}.jsonl.gz", batch)
            done += len(batch)
            bar.update(len(batch))
    return done


def _document(row: dict, source: DatasetSource) -> dict:
    text = f"{row['title']}\n\n{row['text']}" if row.get("title") else row["text"]
    return {"text": text, "source": f"{source.label}:{row.get('url') or row.get('id') or ''}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib.corpora", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("prepare", help="write the Hub corpora (c4, wikipedia-hub) as local shards")
    make.add_argument("--out", type=Path, required=True, help="folder to write c4/ and wikipedia-hub/ into")
    make.add_argument("--docs", type=int, default=PREPARE_DOCS, help="documents per corpus (the first N)")
    make.add_argument("--corpus", nargs="+", choices=sorted(HUB_CORPORA), default=sorted(HUB_CORPORA))
    make.add_argument("--resume", action="store_true", help="continue an interrupted prepare in --out")
    args = parser.parse_args(argv)
    try:
        written = prepare(args.out, args.docs, args.resume, {name: HUB_CORPORA[name] for name in args.corpus})
    except (CorpusError, ConnectionError) as error:
        sys.exit(f"prepare: {error}")
    for name, count in written.items():
        print(f"{name}: {count:,} documents in {args.out / name}")
    print(f"point REPEAT_CORPORA at {args.out.resolve()} to train on them")


if __name__ == "__main__":
    main()
