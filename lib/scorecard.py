"""The scorecard: one row per finding, computed from cached runs with the notebooks' own rules.

`python -m lib.scorecard [--profile cpu]` writes `data_cache/scorecard.csv`.
"""
from __future__ import annotations

import argparse

import pandas as pd

from lib import runs, sweeps, verdicts
from lib import variant_verdicts as vv
from lib.paths import cache_root
from lib.profiles import get_profile

CLAIMS = {
    "3.1": ("Tokens needed grow about linearly with model size", "slope of log tokens-needed on log params",
            "about 1 (Fig. 2)"),
    "3.2": ("Repetition degrades; bigger models degrade more", "val loss, largest minus smallest size's "
            "rise from 1 to 256 epochs", "Val Acc 64.6 -> 61.7 (-2.9) at 2^8 epochs, T5-Base (Table 1)"),
    "3.3": ("A larger dataset reduces degradation", "val loss gap to fresh data, smallest minus largest U "
            "at 16 epochs", "2^29 x 2^6 degrades much less than 2^27 x 2^8 (same T)"),
    "3.4": ("Higher-quality data does not prevent degradation", "relative val-loss rise, web minus wikipedia",
            "SQuAD EM -3.0 (Wikipedia) vs -2.5 (C4) (Table 2)"),
    "3.5": ("Trainable parameters, not FLOPs, set the severity", "val-loss rise (unique to repeated), "
            "many-expert MoE minus 1-expert MoE", "more parameters overfit faster; 2x/4x FLOPs change little"),
    "3.6": ("A cheap MoE with similar parameters overfits like the dense model", "final minus best val loss "
            "on repeated data, MoE proxy minus dense", "curves nearly coincide at 0.32-0.39x FLOPs (Fig. 6)"),
    "3.7": ("UL2 degrades more than span corruption", "val-loss rise (unique to repeated), UL2 minus span "
            "corruption", "SQuAD EM -2.9 (UL2) vs -2.5 (MLM) (Table 3)"),
    "3.8": ("Dropout is an effective regularizer; others add little", "final val-loss gain of dropout 0.1 "
            "on repeated data", "Val Acc 61.7 -> 63.0 with dropout (Table 4)"),
    "3.9": ("Dropout can be switched on late", "worst final val-loss gap, late minus from-start dropout",
            "same final quality, faster early (Fig. 8)"),
    "3.10": ("At larger scale dropout needs tuning and is not a full cure", "largest size: final minus best "
             "val loss at its best rate", "T5-XL still dips late with dropout (Fig. 9)"),
    "3.11": ("Tune dropout on a cheap MoE, transfer to the dense model", "Spearman of the rates' final "
             "val loss, MoE vs dense", "same best rate; sweep at 0.48x the cost (Fig. 10)"),
}
COLUMNS = ["finding", "claim", "metric", "paper_value", "our_value", "our_spread", "n_seeds", "verdict"]


def finding_verdicts(profile: str = "cpu", seeds=(0, 1)) -> dict[str, verdicts.Verdict]:
    """Each finding's verdict from the cache (raises MissingRunsError if runs are missing)."""
    p = get_profile(profile)
    table = runs.run_sweep(sweeps.repetition_grid(profile, seeds), allow_train=False, progress=False)
    ladder_cfgs = sweeps.tokens_vs_params(profile, seeds)
    ladder = runs.run_sweep(ladder_cfgs, allow_train=False, progress=False)
    cross = verdicts.ladder_crossovers(ladder, runs.curves(ladder_cfgs), p.ladder)
    larger = runs.run_sweep(sweeps.larger_dataset(profile, seeds), allow_train=False, progress=False)
    quality = runs.run_sweep(sweeps.quality(profile, seeds), allow_train=False, progress=False)
    return {"3.1": verdicts.tokens_grow_with_params(cross, verdicts.n_seeds(ladder)),
            "3.2": verdicts.repetition_degrades(table, p.grid),
            "3.3": verdicts.larger_dataset_mitigates(*verdicts.split_larger_dataset(larger)),
            "3.4": verdicts.quality_does_not_help(quality),
            **variant_findings(profile, seeds)}


def variant_findings(profile: str, seeds=(0, 1)) -> dict[str, verdicts.Verdict]:
    """Findings 3.5-3.11, each by its notebook's rule (3.7 with one more seed, as its notebook)."""
    p = get_profile(profile)
    dense, experts = sweeps.moe_proxy(profile)
    dropout = f"dropout {sweeps.DROPOUT:g}"

    def table(cfgs):
        return runs.run_sweep(cfgs, allow_train=False, progress=False)

    cheap = sweeps.cheap_moe(profile, seeds)
    cheap_curves = runs.curves([c for c in cheap if c.data.epochs == sweeps.REPEATED])
    late = sweeps.late_dropout(profile, seeds)
    return {
        "3.5": vv.params_not_flops(table(sweeps.params_vs_flops(profile, seeds)), experts),
        "3.6": vv.cheap_moe_predicts(table(cheap), cheap_curves, "dense", f"MoE {experts}"),
        "3.7": vv.ul2_degrades_more(table(sweeps.objectives(profile, (*seeds, max(seeds) + 1)))),
        "3.8": vv.dropout_helps_most(table(sweeps.regularizer_grid(profile, seeds)), dropout),
        "3.9": vv.late_dropout_matches(table(late), runs.curves(late), sweeps.LATE_DROPOUT_STARTS, dropout),
        "3.10": vv.dropout_needs_tuning(table(sweeps.dropout_across_sizes(profile, seeds)), p.grid),
        "3.11": vv.moe_transfer(table(sweeps.moe_hparam_transfer(profile, seeds)), "dense", f"MoE {experts}"),
    }


def scorecard(found: dict[str, verdicts.Verdict]) -> pd.DataFrame:
    """The scorecard table from each finding's verdict."""
    rows = []
    for finding, v in found.items():
        claim, metric, paper_value = CLAIMS[finding]
        rows.append({"finding": finding, "claim": claim, "metric": metric, "paper_value": paper_value,
                     "our_value": round(v.effect, 4), "our_spread": round(v.spread, 4), "n_seeds": v.n_seeds,
                     "verdict": v.verdict})
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args(argv)
    table = scorecard(finding_verdicts(args.profile))
    out = cache_root() / "scorecard.csv"
    tmp = out.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)
    print(table.to_string(index=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
