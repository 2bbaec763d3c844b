"""The recipe study behind the cpu profile's version 2: which recipe makes a small T5 use its
encoder soonest, on two CPU cores?

Every recipe keeps the paper's objective (T5 span corruption, density 0.15, mean span 3) and the
version-2 numerics (fp32, one thread per run, kernels pinned to AVX2), and changes one lever of a
base recipe (or combines the levers that helped alone): the learning rate, the optimizer (AdamW, or Adafactor with T5's inverse-square-root
schedule), the batch, the input length, the vocabulary, the model's shape. Each is judged by
`lib.evaluate`'s diagnostics: the tokens at which a span's first-token loss falls `FIRST_TOKEN_BAR`
nats under the unigram model's, the encoder-swap cost and the content loss at the end, and the
wall-clock time.
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from lib import runs
from lib.config import ModelConfig, RunConfig
from lib.profile_check import FIRST_TOKEN_BAR
from lib.profiles import get_profile

STUDY_TOKENS = 2**23  # a reduced budget: 1 epoch of U = T
V2_NUMERICS = {"precision": "fp32", "compile": False, "threads": 1, "kernels": "avx2"}
BASE_DATA = {"data__vocab_size": 4000, "data__input_length": 128}  # version 1's, where the study started
ADAFACTOR_T5 = {"optim__optimizer": "adafactor", "optim__schedule": "rsqrt", "optim__lr": 1e-2,
                "optim__grad_clip": 0.0}


def _preset(size: str) -> ModelConfig:
    return get_profile("cpu").presets[size]


def _deep(size: str, layers: int) -> ModelConfig:
    base = _preset(size)
    return dataclasses.replace(base, name=f"{size}-{layers}L", num_layers=layers, num_decoder_layers=layers)


# name -> changes to the base recipe (RunConfig.replace arguments)
RECIPES: dict[str, dict] = {
    "XS AdamW 3e-3": {},
    "XS AdamW 1e-2": {"optim__lr": 1e-2},
    "XS Adafactor 1e-2 rsqrt": ADAFACTOR_T5,
    "XS batch 8": {"optim__batch_size": 8},
    "XS vocab 1000": {"data__vocab_size": 1000},
    "XS input 64, batch 64": {"data__input_length": 64, "optim__batch_size": 64},
    "XS 4+4 layers": {"model": _deep("XS", 4)},
    "S AdamW 3e-3": {"model": _preset("S")},
    "S Adafactor 1e-2 rsqrt": {"model": _preset("S"), **ADAFACTOR_T5},
    # the levers that helped alone, combined
    "XS input 64, batch 64, vocab 1000": {"data__input_length": 64, "optim__batch_size": 64, "data__vocab_size": 1000},
    "XS 4+4 layers, input 64, batch 64": {"model": _deep("XS", 4), "data__input_length": 64, "optim__batch_size": 64},
}


def base_config(tokens: int = STUDY_TOKENS, seed: int = 0) -> RunConfig:
    """XS of the cpu profile, 1 epoch of `tokens`, AdamW 3e-3, batch 32, with version 1's vocabulary
    (4,000) and inputs (128) and the version-2 numerics."""
    cfg = get_profile("cpu").config("XS", unique_tokens=tokens, seed=seed, batch_size=32, lr=3e-3)
    return cfg.replace(**V2_NUMERICS, **BASE_DATA)


def study(seeds=(0,), tokens: int = STUDY_TOKENS) -> list[RunConfig]:
    return [base_config(tokens, seed).replace(label=f"recipe: {name}", **changes)
            for seed in seeds for name, changes in RECIPES.items()]


def tokens_to_bar(result: dict) -> float | None:
    """Input tokens at the first evaluation whose first-token loss is FIRST_TOKEN_BAR under unigram."""
    bar = result["reference"]["unigram_first_loss"] - FIRST_TOKEN_BAR
    return next((point["tokens"] for point in result["curve"] if point["val_first_loss"] <= bar), None)


def study_table(cfgs: list[RunConfig]) -> pd.DataFrame:
    """One row per recipe run: the diagnostics at the end, the tokens to the bar, the wall-clock time."""
    rows = []
    for cfg in cfgs:
        result = runs.load_cached(cfg)
        if result is None:
            continue
        final, ref, meta = result["final"], result["reference"], result["meta"]
        rows.append({"recipe": cfg.label.removeprefix("recipe: "), "seed": cfg.seed, "params": meta["params"],
                     "tokens": cfg.data.total_tokens, "content loss": final["val_content_loss"],
                     "first-token loss": final["val_first_loss"], "later-token loss": final["val_later_loss"],
                     "unigram first": ref["unigram_first_loss"], "bigram content": ref["bigram_content_loss"],
                     "unigram content": ref["unigram_content_loss"], "encoder use": final["val_encoder_use"],
                     "tokens to bar": tokens_to_bar(result), "minutes": meta["wall_seconds"] / 60})
    return pd.DataFrame(rows)


def study_summary(table: pd.DataFrame) -> str:
    """Markdown: which recipes reached the bar, and how many runs have landed."""
    if table.empty:
        return ("No recipe run has landed yet: `python -m lib.recipes` trains them (two processes of one "
                "thread each, resumable).")
    reached = table.dropna(subset=["tokens to bar"])
    best = table.loc[table["first-token loss"].sub(table["unigram first"]).idxmin()]
    return (f"{table.recipe.nunique()} of {len(RECIPES)} recipes have run at T = 2^{STUDY_TOKENS.bit_length() - 1} "
            f"tokens ({len(table)} runs). {reached.recipe.nunique()} brought a span's first-token loss {FIRST_TOKEN_BAR} nats under the unigram model's"
            + (f" (first: {reached.sort_values('tokens to bar').iloc[0]['recipe']})" if len(reached) else "")
            + f". Closest: **{best['recipe']}**, first-token loss {best['first-token loss']:.3f} against unigram "
            f"{best['unigram first']:.3f}, encoder swap {best['encoder use']:+.3f} nats.")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Train the missing runs of the recipe study and print its table.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--parallel", type=int, default=2, help="processes side by side (one thread each)")
    args = parser.parse_args(argv)
    cfgs = study(tuple(args.seeds))
    runs.run_sweep(cfgs, allow_train=True, parallel=args.parallel)
    print(study_table(cfgs).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
