"""The scorecard: one row per finding, computed from cached runs with the notebooks' own rules.

`python -m lib.scorecard [--profile cpu]` writes `data_cache/scorecard.csv`.
"""
from __future__ import annotations

import argparse

import pandas as pd

from lib import downstream, finetune, gpu_results, page, paper, profile_check, runs, sweeps, verdicts
from lib import variant_verdicts as vv
from lib.paths import cache_root, repo_root
from lib.profiles import get_profile

CLAIMS = {  # finding -> (claim, what our headline contrast measures)
    "3.1": ("Tokens needed grow about linearly with model size", "slope of log tokens-needed on log params"),
    "3.2": ("Repetition degrades; bigger models degrade more", "val-loss rise from 1 to 256 epochs, largest minus "
            "smallest size"),
    "3.3": ("A larger dataset reduces degradation", "val-loss gap to fresh data at 16 epochs, smallest minus largest U"),
    "3.4": ("Higher-quality data does not prevent degradation", "relative val-loss rise, web minus wikipedia"),
    "3.5": ("Trainable parameters, not FLOPs, set the severity", "val-loss rise (unique to repeated), many-expert "
            "MoE minus the few-expert MoE of the same FLOPs"),
    "3.6": ("A cheap MoE with similar parameters overfits like the dense model", "final minus best val loss on "
            "repeated data, MoE proxy minus dense"),
    "3.7": ("UL2 degrades more than span corruption", "val-loss rise (unique to repeated), UL2 minus span corruption"),
    "3.8": ("Dropout is an effective regularizer; others add little", "final val-loss gain of dropout on repeated data"),
    "3.9": ("Dropout can be switched on late", "worst final val-loss gap, late minus from-start dropout"),
    "3.10": ("At larger scale dropout needs tuning and is not a full cure", "largest size: final minus best val loss "
             "at its best rate"),
    "3.11": ("Tune dropout on a cheap MoE, transfer to the dense model", "dense val loss at the proxy's best rate "
             "minus at its own best"),
}
DOWNSTREAM_CLAIMS = {  # chapter 13's verdicts -> (claim, what the headline contrast measures)
    "3.2 downstream": ("Repetition raises the fine-tuned title loss", "title-loss change from 1 epoch to the most "
                       "repetition, largest size the probe can rank"),
    "3.4 downstream": ("Wikipedia pre-training still degrades downstream", "title-loss change from 1 epoch to the "
                       "most repetition, wikipedia"),
    "3.7 downstream": ("UL2 degrades more downstream than span corruption", "title-loss change with repetition, UL2 "
                       "minus span corruption"),
}
# What the paper's claim says of our headline contrast: above zero ("+"), about zero ("0", a claim of absence) or
# not above zero ("<=": 3.4, the cleaner corpus degrades at least as much).
PAPER_SIGN = {"3.1": "+", "3.2": "+", "3.3": "+", "3.4": "<=", "3.5": "+", "3.6": "0", "3.7": "+", "3.8": "+",
              "3.9": "0", "3.10": "+", "3.11": "0"}
# The first rules' output on the committed cpu runs, computed by running lib at commit 840cf60.
VERSION_1 = repo_root() / "book" / "verdicts_v1.csv"
COLUMNS = ["finding", "claim", "metric", "paper_value", "estimate", "low", "high", "detectable", "n_seeds", "verdict",
           "reason"]


def finding_verdicts(profile: str = "cpu", seeds=(0, 1)) -> dict[str, verdicts.Verdict]:
    """Each finding's verdict from the cache (raises MissingRunsError if runs are missing)."""
    p = get_profile(profile)
    table = runs.run_sweep(sweeps.repetition_grid(profile, seeds), allow_train=False, progress=False)
    ladder_cfgs = sweeps.tokens_vs_params(profile, seeds)
    ladder = runs.run_sweep(ladder_cfgs, allow_train=False, progress=False)
    cross = verdicts.ladder_crossovers(ladder, runs.curves(ladder_cfgs), p.ladder)
    larger = runs.run_sweep(sweeps.larger_dataset(profile, seeds), allow_train=False, progress=False)
    quality = runs.run_sweep(sweeps.quality(profile, seeds), allow_train=False, progress=False)
    bars = profile_check.bars(ladder, p.ladder)  # size comparisons need models that use their encoder
    caveat = profile_check.size_caveat(verdicts.ladder_failures(verdicts.size_ladder(table, p.grid)), bars, p.grid)
    return {"3.1": profile_check.gate(verdicts.tokens_grow_with_params(cross, verdicts.n_seeds(ladder)), bars, p.ladder),
            "3.2": profile_check.gate(verdicts.repetition_degrades(table, p.grid), bars, p.grid),
            "3.3": verdicts.larger_dataset_mitigates(*verdicts.split_larger_dataset(larger)),
            "3.4": verdicts.quality_does_not_help(quality),
            **variant_findings(profile, caveat, seeds)}


def variant_findings(profile: str, size_caveat: str, seeds=(0, 1)) -> dict[str, verdicts.Verdict]:
    """Findings 3.5-3.11, each by its notebook's rule (3.6, 3.7 and 3.9 with one more seed, as their notebooks);
    `size_caveat` says why the grid's sizes cannot stand for the paper's, if they cannot (for 3.10)."""
    p = get_profile(profile)
    experts = sweeps.moe_proxy(profile)[1]  # finding 3.11's proxy (the variant size's)
    dropout = f"dropout {sweeps.DROPOUT:g}"

    def table(cfgs):
        return runs.run_sweep(cfgs, allow_train=False, progress=False)

    more_seeds = (*seeds, max(seeds) + 1)  # where the effect is within 3x the spread at two seeds
    cheap = sweeps.cheap_moe(profile, more_seeds)
    cheap_curves = runs.curves([c for c in cheap if c.data.epochs == sweeps.REPEATED])
    late = sweeps.late_dropout(profile, more_seeds)
    return {
        "3.5": vv.params_not_flops_by_size(table(sweeps.params_vs_flops(profile, seeds)), sweeps.RECIPE_EXPERTS,
                                           sweeps.MOE_BASELINE_EXPERTS[0]),
        "3.6": vv.cheap_moe_by_size(table(cheap), cheap_curves, sweeps.moe_pairs(profile)),
        "3.7": vv.ul2_degrades_more(table(sweeps.objectives(profile, more_seeds))),
        "3.8": vv.dropout_helps_most(table(sweeps.regularizer_grid(profile, seeds)), dropout),
        "3.9": vv.late_dropout_matches(table(late), runs.curves(late), sweeps.LATE_DROPOUT_STARTS, dropout),
        "3.10": vv.dropout_needs_tuning(table(sweeps.dropout_across_sizes(profile, seeds)), p.grid, size_caveat),
        "3.11": vv.moe_transfer(table(sweeps.moe_hparam_transfer(profile, seeds)), "dense", f"MoE {experts}"),
    }


def downstream_verdicts(profile: str = "cpu", seeds=(0, 1)) -> dict[str, verdicts.Verdict]:
    """The downstream probe's three verdicts from cached probes (chapter 13's rules and grids)."""
    p = get_profile(profile)

    def probes(cfgs):
        return finetune.probe_table(cfgs, allow_train=False, progress=False)

    return {"3.2 downstream": downstream.repetition_hurts_downstream(probes(sweeps.repetition_grid(profile, seeds)), p.grid),
            "3.4 downstream": downstream.quality_does_not_protect_downstream(probes(sweeps.quality(profile, seeds))),
            "3.7 downstream": downstream.ul2_hurts_more_downstream(
                probes(sweeps.objectives(profile, (*seeds, max(seeds) + 1))))}


def gpu_findings() -> dict[str, verdicts.Verdict]:
    """Findings 3.1 and 3.2 on the `gpu` profile's runs, where a GPU window has returned them."""
    return gpu_results.verdicts_found(gpu_results.table())


def versions(found: dict[str, verdicts.Verdict]) -> pd.DataFrame:
    """Each finding's verdict under the first rules (the record in `VERSION_1`) beside the current one."""
    old = pd.read_csv(VERSION_1, dtype=str).set_index("finding")["verdict_v1"]
    new = pd.Series({finding: v.verdict for finding, v in found.items()}, name="verdict now")
    return pd.DataFrame({"verdict under version 1": old, "verdict now": new})


def scorecard(found: dict[str, verdicts.Verdict]) -> pd.DataFrame:
    """The scorecard table from each finding's verdict, with its headline interval."""
    rows = []
    for finding, v in found.items():
        claim, metric = CLAIMS[finding]
        rows.append({"finding": finding, "claim": claim, "metric": metric, "paper_value": paper.summary(finding),
                     "estimate": round(v.effect, 4), "low": round(v.low, 4), "high": round(v.high, 4),
                     "detectable": round(v.detectable, 4), "n_seeds": v.n_seeds, "verdict": v.verdict,
                     "reason": v.reason})
    return pd.DataFrame(rows, columns=COLUMNS)


def box(v: verdicts.Verdict) -> str:
    """The verdict box of finding `v.finding` (3.1-3.11) for the top of its page."""
    return page.finding_box(v, *CLAIMS[v.finding])


def downstream_box(found: list[verdicts.Verdict]) -> str:
    """The downstream chapter's box: its verdicts, each against the paper's SQuAD result."""
    return page.several_box("The downstream probe: the answer", [(v, *DOWNSTREAM_CLAIMS[v.finding]) for v in found])


def card(found: dict[str, verdicts.Verdict], caption: str, name: str) -> str:
    """The scorecard as a numbered MyST table that fits the column: finding, short claim, the paper's
    result, ours ± the half-width of its 95 % interval, a coloured verdict; then a legend of what
    'ours' measures."""
    rows = [f"| {f} | {CLAIMS[f][0]} | {paper.summary(f)} | {page.plus_minus(v)} | {page.label(v.verdict)} |"
            for f, v in found.items()]
    legend = [f"- **{f}**: {CLAIMS[f][1]} ({v.metric}, {v.n_seeds} seeds)" for f, v in found.items()]
    return "\n".join([f":::{{table}} {caption}", f":name: {name}", "",
                      "| finding | claim | paper | ours ± 95 % | verdict |", "|---|---|---|---|---|", *rows, ":::", "",
                      "**What *ours* measures** (the headline contrast of each rule; ± is the half-width of its "
                      "95 % t-interval, rounded to two significant digits):", "", *legend])


def counts_line(found: dict[str, verdicts.Verdict]) -> str:
    """How many findings got each label, as one line of coloured labels."""
    n = pd.Series([v.verdict for v in found.values()]).value_counts()
    return " · ".join(f"{page.label(lab)} {int(n.get(lab, 0))}" for lab in verdicts.LABELS)


def figure_table(found: dict[str, verdicts.Verdict]) -> pd.DataFrame:
    """Per finding: its effect in units of its noise threshold (`page.units`), verdict and the paper's sign."""
    return pd.DataFrame([{"finding": f, "units": page.units(v), "verdict": v.verdict, "paper": PAPER_SIGN[f]}
                         for f, v in found.items()])


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
