"""Cut the fixture corpus (`data/fixtures/`) from the full local corpora, reproducibly.

`python -m lib.fixture --source DIR` reads DIR/web/ and DIR/wikipedia/ in shard order and keeps
every `web` document whose `source` is C4 (ODC-BY; the blog posts are left out, their licence is
non-commercial research only) and the first `wikipedia` articles (CC BY-SA) up to WIKIPEDIA_CHARS
characters of text. Rows are kept unchanged and written DOCS_PER_SHARD to a shard by
`lib.corpora.write_shard`: the same corpora always give the same bytes.
"""
from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path

from lib.corpora import fixture_root, local_shards, read_rows, write_shard

C4_SOURCES = ("Diffusion-bachelor/diffusion-data-constraint-rare-events@", "XuandongZhao/pf-decoding@")
WIKIPEDIA_CHARS = 8_000_000
DOCS_PER_SHARD = 1_000


def c4_only(rows: Iterable[dict]) -> Iterator[dict]:
    return (row for row in rows if row["source"].startswith(C4_SOURCES))


def first_characters(rows: Iterable[dict], budget: int) -> Iterator[dict]:
    """Rows in order until their texts hold `budget` characters (the row that crosses it included)."""
    taken = 0
    for row in rows:
        if taken >= budget:
            return
        taken += len(row["text"])
        yield row


def cut(source_root: Path, out: Path) -> dict[str, int]:
    """Write the fixture's web/ and wikipedia/ under `out`; returns the documents of each."""
    chosen = {"web": list(c4_only(read_rows(local_shards("web", source_root)))),
              "wikipedia": list(first_characters(read_rows(local_shards("wikipedia", source_root)),
                                                 WIKIPEDIA_CHARS))}
    for name, rows in chosen.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for start in range(0, len(rows), DOCS_PER_SHARD):
            names.append(f"train-{start // DOCS_PER_SHARD:05d}.jsonl.gz")
            write_shard(folder / names[-1], rows[start:start + DOCS_PER_SHARD])
        for stale in folder.glob("*.jsonl.gz"):
            if stale.name not in names:
                stale.unlink()
    return {name: len(rows) for name, rows in chosen.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib.fixture", description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="folder holding the full web/ and wikipedia/")
    parser.add_argument("--out", type=Path, default=fixture_root())
    args = parser.parse_args(argv)
    for name, count in cut(args.source, args.out).items():
        print(f"{name}: {count:,} documents in {args.out / name}")


if __name__ == "__main__":
    main()
