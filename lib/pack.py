"""Token packs: the token streams of a profile's runs, pre-tokenized, with their tokenizer, in one
folder small enough to travel to a machine that has neither the corpora nor `datasets`.

`python -m lib.pack build --profile gpu` writes into `data_cache/pack/<profile>/`:

- `<corpus>.train.u16.xz`: the first tokens of the training corpus's training documents in the seeded
  subset order (every nested subset of the profile is a prefix of it), enough for the budget T;
- `<corpus>.val.u16.xz`: the first tokens of each corpus's held-out documents, enough for the
  validation set (the training corpus's, and the probe's on the tokenizer's other corpora);
- `<tokenizer folder>/spiece.model`, the tokenizer itself;
- `pack.json`: what the streams were built from (the data settings that decide them, the corpus
  fingerprints), their lengths and sha256 digests.

With `REPEAT_PACK=<folder>` set, `data_source(data)` reads the pack instead of the corpora. The
batches and validation sets are the same arrays (a test compares them), so runs keep their cache keys.
`python -m lib.pack check --profile gpu` verifies a pack before a run relies on it.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import lzma
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.config import DataConfig
from lib.paths import cache_root
from lib.tokenizer import Tokenizer

FORMAT = 2
# The data settings that decide a corpus's token streams (the rest of a DataConfig only cuts them).
IDENTITY_FIELDS = ("tokenizer_corpora", "vocab_size", "tokenizer_sample_chars", "max_docs", "subset_seed")


class PackError(RuntimeError):
    """A pack that is missing, corrupt, or built for other data settings."""


def identity(data: DataConfig) -> dict:
    return {name: list(v) if isinstance(v := getattr(data, name), tuple) else v for name in IDENTITY_FIELDS}


def default_folder(profile: str) -> Path:
    return cache_root() / "pack" / profile


def _rebuild_hint(folder: Path) -> str:
    profile = json.loads((folder / "pack.json").read_text()).get("profile", "PROFILE") if (
        folder / "pack.json").exists() else "PROFILE"
    return f"rebuild it where the corpora are: python -m lib.pack build --profile {profile} --out {folder}"


@dataclass(frozen=True)
class PackStore:
    """One corpus of a pack, with the stream methods of `lib.tokens.TokenStore` that runs use."""

    corpus: str
    source: str
    fingerprint: str
    tokenizer: Tokenizer
    subset_seed: int
    train: np.ndarray
    val: np.ndarray
    corpus_training_tokens: int  # what the corpus itself holds (the pack holds a prefix)

    def training_stream(self, subset_seed: int, max_tokens: int) -> np.ndarray:
        if subset_seed != self.subset_seed:
            raise PackError(f"the pack holds subset order {self.subset_seed}, the run asks for {subset_seed}")
        if max_tokens > len(self.train):
            raise PackError(f"the pack holds {len(self.train):,} training tokens of {self.corpus!r}, the run needs "
                            f"{max_tokens:,}: build the pack for a profile whose budget covers this run")
        return self.train[:max_tokens]

    def training_token_count(self) -> int:
        return self.corpus_training_tokens

    def validation_stream(self, max_tokens: int) -> np.ndarray:
        return self.val[:max_tokens]


def _write_stream(path: Path, tokens: np.ndarray) -> dict:
    raw = np.ascontiguousarray(tokens, dtype=np.uint16).tobytes()
    path.write_bytes(lzma.compress(raw, preset=6))
    return {"file": path.name, "tokens": int(len(tokens)), "sha256": hashlib.sha256(raw).hexdigest(),
            "bytes": path.stat().st_size}


def _read_stream(folder: Path, entry: dict) -> np.ndarray:
    path = folder / entry["file"]
    try:
        raw = lzma.decompress(path.read_bytes())
    except (OSError, lzma.LZMAError) as error:
        raise PackError(f"pack file {path} is missing or corrupt ({error}); {_rebuild_hint(folder)}") from error
    if hashlib.sha256(raw).hexdigest() != entry["sha256"] or len(raw) != 2 * entry["tokens"]:
        raise PackError(f"pack file {path} does not match its digest in pack.json; {_rebuild_hint(folder)}")
    return np.frombuffer(raw, dtype=np.uint16)


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / "pack.json").read_text())
    except (OSError, ValueError) as error:
        raise PackError(f"no readable token pack in {folder} ({error}). Build one where the corpora are: "
                        "python -m lib.pack build --profile PROFILE --out FOLDER") from error
    if manifest.get("format") != FORMAT:
        raise PackError(f"pack {folder} has format {manifest.get('format')}, this code reads {FORMAT}; "
                        f"{_rebuild_hint(folder)}")
    return manifest


def _check_identity(manifest: dict, data: DataConfig, folder: Path) -> None:
    wanted, built = identity(data), manifest["identity"]
    if wanted != built:
        diff = {k: (built.get(k), wanted[k]) for k in wanted if built.get(k) != wanted[k]}
        raise PackError(f"pack {folder} was built for other data settings (pack, run): {diff}; "
                        f"{_rebuild_hint(folder)}")
    if data.corpus not in manifest["corpora"]:
        raise PackError(f"pack {folder} holds corpora {sorted(manifest['corpora'])}, not {data.corpus!r}; "
                        f"{_rebuild_hint(folder)}")


def _tokenizer(folder: Path, manifest: dict) -> Tokenizer:
    tok = manifest["tokenizer"]
    model = folder / tok["folder"] / "spiece.model"
    try:
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
    except OSError as error:
        raise PackError(f"pack {folder} has no tokenizer at {model}; {_rebuild_hint(folder)}") from error
    if digest != tok["sha256"]:
        raise PackError(f"the tokenizer in {model} is not the one the pack was built with; {_rebuild_hint(folder)}")
    return Tokenizer(model.parent, tok["vocab_size"])


_LOADED: dict[tuple[str, str], tuple[dict, PackStore]] = {}


def load(folder: Path, data: DataConfig) -> PackStore:
    """The pack's store for this data config's corpus (read and verified once per process)."""
    folder = Path(folder).resolve()
    key = (str(folder), data.corpus)
    if key not in _LOADED:
        manifest = read_manifest(folder)
        _check_identity(manifest, data, folder)  # before reading a corpus the pack may not hold
        entry = manifest["corpora"][data.corpus]
        _LOADED[key] = manifest, PackStore(data.corpus, entry["source"], entry["fingerprint"],
                                           _tokenizer(folder, manifest), data.subset_seed,
                                           _read_stream(folder, entry["train"]), _read_stream(folder, entry["val"]),
                                           entry["corpus_training_tokens"])
    manifest, store = _LOADED[key]
    _check_identity(manifest, data, folder)
    return store


def data_source(data: DataConfig):
    """Where a run reads its tokens: the pack named by REPEAT_PACK, else the tokenized corpus."""
    if folder := os.environ.get("REPEAT_PACK"):
        return load(Path(folder), data)
    from lib.tokens import token_store  # reads the corpora (and needs `datasets`)
    return token_store(data)


def build(data: DataConfig, corpora: list[str], train_tokens: int, val_tokens: int, out: Path,
          profile: str = "custom") -> dict:
    """Write a pack for this data config, atomically: its corpus's training stream (`train_tokens`)
    and the validation streams (`val_tokens`) of these corpora."""
    from lib.tokens import token_store

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-pack-", dir=out.parent))
    try:
        manifest = {"format": FORMAT, "profile": profile, "identity": identity(data), "corpora": {}}
        for corpus in corpora:
            store = token_store(dataclasses.replace(data, corpus=corpus))
            if store.tokenizer.total_vocab > 2**16:
                raise PackError("packs store uint16 tokens: the vocabulary must have at most 65,536 ids")
            manifest["corpora"][corpus] = {
                "source": store.source, "fingerprint": store.fingerprint,
                "corpus_training_tokens": store.training_token_count(),
                "train": _write_stream(tmp / f"{corpus}.train.u16.xz", store.training_stream(
                    data.subset_seed, train_tokens if corpus == data.corpus else 0)),
                "val": _write_stream(tmp / f"{corpus}.val.u16.xz", store.validation_stream(val_tokens))}
            tokenizer = store.tokenizer
        shutil.copytree(tokenizer.folder, tmp / tokenizer.folder.name)
        manifest["tokenizer"] = {"folder": tokenizer.folder.name, "vocab_size": tokenizer.vocab_size,
                                 "sha256": hashlib.sha256(tokenizer.model_file.read_bytes()).hexdigest()}
        (tmp / "pack.json").write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def profile_needs(profile_name: str) -> tuple[DataConfig, list[str], int, int]:
    """What a pack for a profile must hold: its data config, corpora, and the training and validation
    tokens of its largest run (the budget T at 1 epoch) and validation set."""
    from lib.profiles import get_profile
    from lib.objectives import raw_length_for_inputs

    profile = get_profile(profile_name)
    cfg = profile.config(profile.sizes[0])
    raw = raw_length_for_inputs(cfg.data.input_length, cfg.data.noise_density, cfg.data.mean_noise_span)[0]
    corpora = list(dict.fromkeys([cfg.data.corpus, *cfg.data.tokenizer_corpora]))
    return cfg.data, corpora, profile.total_tokens // cfg.data.input_length * raw, cfg.eval_sequences * raw


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def check(folder: Path, profile_name: str) -> dict:
    """Verify a pack for a profile: present, intact, built for its data settings and big enough."""
    data, corpora, train_tokens, val_tokens = profile_needs(profile_name)
    manifest = read_manifest(folder)
    for corpus in corpora:
        store = load(folder, dataclasses.replace(data, corpus=corpus))
        if len(store.train) < (train_tokens if corpus == data.corpus else 0) or len(store.val) < val_tokens:
            raise PackError(f"pack {folder} is too small for profile {profile_name!r} ({corpus}: "
                            f"{len(store.train):,}/{train_tokens:,} training and {len(store.val):,}/{val_tokens:,} "
                            f"validation tokens); {_rebuild_hint(folder)}")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build or check a token pack for a profile.")
    parser.add_argument("action", choices=("build", "check"))
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--out", type=Path, help="the pack folder (default data_cache/pack/<profile>)")
    args = parser.parse_args(argv)
    folder = args.out or default_folder(args.profile)
    try:
        if args.action == "build":
            data, corpora, train_tokens, val_tokens = profile_needs(args.profile)
            build(data, corpora, train_tokens, val_tokens, folder, args.profile)
        check(folder, args.profile)
    except PackError as error:
        sys.exit(f"pack: {error}")
    print(f"pack {folder}: profile {args.profile}, {size_of(folder) / 2**20:.1f} MiB, ok")


if __name__ == "__main__":
    main()
