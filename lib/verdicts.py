"""Rules that turn a results table into a verdict, fixed before the runs (PAPER.md section 6).

An effect counts only if it exceeds `NOISE_MULTIPLE` times the seed-to-seed spread (the standard
deviation across seeds of the same cell, pooled over the cells involved). Verdicts compare the
metric the data can resolve at this scale: validation loss (PILOT.md lesson 2); accuracies are
reported beside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.paper import TOKENS_PER_PARAM_SLOPE
from lib.sweeps import FIXED_REPETITION

NOISE_MULTIPLE = 2.0
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)  # Student t, df 1..10
REPRODUCED, PARTLY, NOT = "reproduced", "partly reproduced", "not reproduced"


@dataclass
class Verdict:
    finding: str
    verdict: str
    sentence: str
    metric: str
    effect: float
    spread: float
    n_seeds: int
    details: dict = field(default_factory=dict)

    def _repr_markdown_(self) -> str:
        return f"**Finding {self.finding}: {self.verdict}.** {self.sentence}"


def seed_spread(table: pd.DataFrame, cell: list[str], metric: str) -> float:
    """Pooled standard deviation across seeds within each cell (NaN with a single seed)."""
    variances = table.groupby(cell)[metric].var(ddof=1).dropna()
    return float(np.sqrt(variances.mean())) if len(variances) else float("nan")


def significant(effect: float, spread: float) -> bool:
    return bool(np.isfinite(spread) and abs(effect) > NOISE_MULTIPLE * spread)


def n_seeds(table: pd.DataFrame) -> int:
    return int(table["seed"].nunique())


def complete(table: pd.DataFrame, cell: list[str]) -> bool:
    """Every cell has the same number of seeds (no missing runs)."""
    return table.groupby(cell)["seed"].nunique().nunique() == 1


# --- 3.2 -----------------------------------------------------------------------------------------

def degradation_table(table: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """Per size and epochs: mean and seed std of the final metric and its change from 1 epoch."""
    stats = table.groupby(["size", "epochs"])[metric].agg(["mean", "std"]).reset_index()
    one = stats[stats.epochs == 1].set_index("size")["mean"]
    stats["change_from_1_epoch"] = stats["mean"] - stats["size"].map(one)
    return stats


def repetition_degrades(table: pd.DataFrame, sizes: list[str], metric: str = "val_loss") -> Verdict:
    """3.2. (a) at the most repetition the curve bottoms out and rises (final - best > noise);
    (b) the final degradation (most-repeated minus 1 epoch) grows with size;
    (c) the largest size on U ends worse than the next size on 4U (the paper's XL-vs-Large)."""
    most = table.epochs.max()
    spread = seed_spread(table, ["size", "epochs"], metric)
    mean = table.groupby(["size", "epochs"])[[metric, f"best_{metric}"]].mean()
    degradation = {s: mean.loc[(s, most), metric] - mean.loc[(s, 1), metric] for s in sizes}
    overfit = {s: mean.loc[(s, most), metric] - mean.loc[(s, most), f"best_{metric}"] for s in sizes}
    a = all(significant(v, spread) for v in overfit.values())
    steps = np.diff([degradation[s] for s in sizes])
    b = bool(np.all(steps > 0)) and significant(degradation[sizes[-1]] - degradation[sizes[0]], spread)
    large_on_u = mean.loc[(sizes[-1], most), metric]
    smaller_on_4u = mean.loc[(sizes[-2], most // 4), metric]
    c = large_on_u - smaller_on_4u > NOISE_MULTIPLE * spread
    verdict = NOT if not b else (REPRODUCED if a and c else PARTLY)
    effect = degradation[sizes[-1]] - degradation[sizes[0]]
    sentence = (
        f"Final {metric} rises by {', '.join(f'{s} {degradation[s]:+.3f}' for s in sizes)} from 1 to "
        f"{most} epochs; (a) curves bottom out and rise at {most} epochs: {'yes' if a else 'no'} "
        f"(final minus best {', '.join(f'{v:.3f}' for v in overfit.values())}); "
        f"(b) degradation grows with size beyond noise: {'yes' if b else 'no'} ({sizes[-1]} minus "
        f"{sizes[0]}: {effect:+.3f} vs seed spread {spread:.3f}); (c) {sizes[-1]} on T/{most} ends worse "
        f"than {sizes[-2]} on T/{most // 4}: {'yes' if c else 'no'} ({large_on_u:.3f} vs {smaller_on_4u:.3f}).")
    return Verdict("3.2", verdict, sentence, metric, effect, spread, n_seeds(table),
                   {"a": a, "b": b, "c": bool(c), "degradation": degradation, "overfit": overfit})


# --- 3.1 -----------------------------------------------------------------------------------------

def crossovers(curves: pd.DataFrame, sizes: list[str], flops_per_token: dict[str, float],
               params: dict[str, float], metric: str = "val_loss") -> pd.DataFrame:
    """For each size and the next larger one: the training compute at which the larger model's
    mean curve first drops below the smaller's, and the tokens the smaller has seen by then."""
    rows = []
    mean = curves[curves.tokens > 0].groupby(["size", "tokens"])[metric].mean()
    for small, big in zip(sizes, sizes[1:]):
        s, b = mean.loc[small], mean.loc[big]
        compute_s = s.index.to_numpy() * flops_per_token[small]
        compute_b = b.index.to_numpy() * flops_per_token[big]
        grid = np.geomspace(max(compute_s.min(), compute_b.min()), min(compute_s.max(), compute_b.max()), 200)
        gap = (np.interp(np.log(grid), np.log(compute_b), b.to_numpy())
               - np.interp(np.log(grid), np.log(compute_s), s.to_numpy()))
        below = np.flatnonzero(gap < 0)
        crossing = float(grid[below[0]]) if len(below) and below[0] > 0 else np.nan
        rows.append({"size": small, "next_size": big, "params": params[small],
                     "crossover_flops": crossing, "tokens_needed": crossing / flops_per_token[small],
                     "bigger_always_better": bool(len(below) and below[0] == 0),
                     "never_overtaken": not len(below)})
    return pd.DataFrame(rows)


def per_size(table: pd.DataFrame) -> pd.DataFrame:
    """Seed means per size of what a size comparison needs (parameters, FLOPs per token, final metrics)."""
    return table.groupby("size", sort=False)[["params", "non_embedding_params", "flops_per_input_token",
                                              "val_loss", "val_content_accuracy", "tokens_per_second"]].mean()


def with_compute(curves: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Curves with a `flops` column: training FLOPs spent by each evaluation."""
    flops_per_token = per_size(table)["flops_per_input_token"]
    return curves.assign(flops=curves.tokens * curves["size"].map(flops_per_token))


def ladder_crossovers(table: pd.DataFrame, curves: pd.DataFrame, sizes: list[str]) -> pd.DataFrame:
    """`crossovers` for the 1-epoch runs of a size ladder, with each size's compute and parameters."""
    sizes_table = per_size(table)
    return crossovers(curves, sizes, sizes_table["flops_per_input_token"].to_dict(), sizes_table["params"].to_dict())


def loglog_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope of log y on log x with a 95 % t-interval (NaN bounds if < 3 points)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    slope, intercept = np.polyfit(lx, ly, 1)
    if len(lx) < 3:
        return float(slope), float("nan"), float("nan")
    residual = ly - (slope * lx + intercept)
    stderr = np.sqrt(residual @ residual / (len(lx) - 2) / ((lx - lx.mean()) ** 2).sum())
    half = T_975[min(len(lx) - 2, len(T_975)) - 1] * stderr
    return float(slope), float(slope - half), float(slope + half)


def tokens_grow_with_params(cross: pd.DataFrame, seeds: int = 0) -> Verdict:
    """3.1: slope of log(tokens needed) on log(params) within 0.7-1.3 reproduces; < 0.5 does not."""
    found = cross.dropna(subset=["tokens_needed"])
    if len(found) < 2:
        never, always = int(cross.never_overtaken.sum()), int(cross.bigger_always_better.sum())
        sentence = (f"Only {len(found)} of {len(cross)} size pairs cross within the runs' budget, too few to "
                    f"fit a slope: in {never} pair(s) the larger model never reaches the smaller one's loss at "
                    f"equal compute, in {always} it is ahead from the first evaluation.")
        return Verdict("3.1", NOT, sentence, "val_loss", float("nan"), float("nan"), seeds,
                       {"crossovers": cross})
    slope, low, high = loglog_slope(found.params.to_numpy(), found.tokens_needed.to_numpy())
    lo_rule, hi_rule = TOKENS_PER_PARAM_SLOPE
    if lo_rule <= slope <= hi_rule:
        verdict = REPRODUCED
    elif slope < 0.5:
        verdict = NOT
    else:
        verdict = PARTLY
    ci = f" (95 % CI {low:.2f} to {high:.2f})" if np.isfinite(low) else " (two points: no interval)"
    sentence = (f"Tokens needed before the next size pays off grow with parameters with log-log slope "
                f"{slope:.2f}{ci}; the paper's rule asks for {lo_rule}-{hi_rule} (linear growth).")
    return Verdict("3.1", verdict, sentence, "val_loss", slope, (high - low) / 2 if np.isfinite(low) else float("nan"),
                   seeds, {"crossovers": cross, "ci": (low, high)})


# --- 3.3 -----------------------------------------------------------------------------------------

def split_larger_dataset(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three parts of the 3.3 grid: fixed-repetition runs, fresh-data runs of the same T, and
    the paper's same-T design (2^6 vs 2^8 epochs at the largest T)."""
    fixed = table[table.epochs == FIXED_REPETITION]
    fresh = table[(table.epochs == 1) & table.total_tokens.isin(fixed.total_tokens)]
    paper = table[table.epochs.isin([64, 256]) & (table.total_tokens == table.total_tokens.max())]
    return fixed, fresh, paper


def larger_dataset_mitigates(fixed: pd.DataFrame, fresh: pd.DataFrame, paper: pd.DataFrame,
                             metric: str = "val_loss") -> Verdict:
    """3.3. (i) at a fixed repetition count, degradation against a 1-epoch run of equal T shrinks
    as U grows; (ii) the paper's design, same T: 2^6 epochs (bigger U) degrades less than 2^8."""
    f = fixed.groupby("total_tokens")[metric].mean()
    g = fresh.groupby("total_tokens")[metric].mean()
    degradation = (f - g.reindex(f.index)).sort_index()  # indexed by T (= 16 U), smallest U first
    spread = np.nanmax([seed_spread(fixed, ["total_tokens"], metric), seed_spread(fresh, ["total_tokens"], metric)])
    shrinking = bool(np.all(np.diff(degradation.to_numpy()) < 0))
    i = shrinking and significant(degradation.iloc[0] - degradation.iloc[-1], spread)
    p = paper.groupby("epochs")[metric].mean()
    paper_spread = seed_spread(paper, ["epochs"], metric)
    ii = p.loc[p.index.max()] - p.loc[p.index.min()] > NOISE_MULTIPLE * paper_spread
    verdict = REPRODUCED if i and ii else (PARTLY if ii or i else NOT)
    sentence = (f"(i) At {int(fixed.epochs.iloc[0])} epochs, the gap to a 1-epoch run of equal T is "
                f"{', '.join(f'{d:+.3f}' for d in degradation)} for U growing 4x each step "
                f"({'shrinks beyond noise' if i else 'does not shrink beyond noise'}, spread {spread:.3f}); "
                f"(ii) at equal T, {int(p.index.min())} epochs ends at {p.iloc[0]:.3f} and {int(p.index.max())} "
                f"epochs at {p.iloc[-1]:.3f} ({'a difference beyond noise' if ii else 'within noise'}). "
                + ("" if i else "Only the paper's comparison, which confounds dataset size with repetition "
                   "count, supports the claim."))
    return Verdict("3.3", verdict, sentence, metric, float(degradation.iloc[0] - degradation.iloc[-1]),
                   spread, n_seeds(fixed), {"i": i, "ii": bool(ii), "degradation": degradation.to_dict()})


# --- 3.4 -----------------------------------------------------------------------------------------

def relative_degradation(table: pd.DataFrame, epochs: int, metric: str = "val_loss") -> pd.DataFrame:
    """Per corpus and seed: (metric at `epochs` - metric at 1 epoch) / metric at 1 epoch."""
    wide = table.pivot_table(index=["corpus", "seed"], columns="epochs", values=metric)
    return ((wide[epochs] - wide[1]) / wide[1]).rename("relative_degradation").reset_index()


def quality_does_not_help(table: pd.DataFrame, clean: str = "wikipedia", noisy: str = "web",
                          metric: str = "val_loss") -> Verdict:
    """3.4: reproduced unless the clean corpus degrades clearly less (relative, own held-out set)."""
    most = int(table.epochs.max())
    rel = relative_degradation(table, most, metric)
    by = rel.groupby("corpus")["relative_degradation"]
    mean, spread = by.mean(), float(np.sqrt(by.var(ddof=1).mean()))
    effect = mean[noisy] - mean[clean]  # > 0: the clean corpus degrades less
    clearly_less = significant(effect, spread) and effect > 0
    verdict = NOT if clearly_less else REPRODUCED
    sentence = (f"From 1 to {most} epochs, {metric} rises by {mean[clean]:.1%} on {clean} and {mean[noisy]:.1%} "
                f"on {noisy} (relative, each on its own held-out set; seed spread {spread:.1%}): the cleaner "
                f"corpus {'degrades clearly less' if clearly_less else 'does not degrade clearly less'}.")
    return Verdict("3.4", verdict, sentence, metric, float(effect), spread, n_seeds(table),
                   {"relative": mean.to_dict()})


# --- shared tables --------------------------------------------------------------------------------

def size_ladder(table: pd.DataFrame, sizes: list[str], metric: str = "val_loss") -> pd.DataFrame:
    """At 1 epoch: does each size beat the next smaller one by more than the seed spread?"""
    one = table[table.epochs == 1]
    stats = one.groupby("size")[metric].agg(["mean", "std"]).reindex(sizes)
    spread = seed_spread(one, ["size"], metric)
    rows = []
    for small, big in zip(sizes, sizes[1:]):
        gain = stats.loc[small, "mean"] - stats.loc[big, "mean"]
        rows.append({"smaller": small, "larger": big, f"{metric} smaller": stats.loc[small, "mean"],
                     f"{metric} larger": stats.loc[big, "mean"], "gain": gain, "seed spread": spread,
                     "beyond noise": significant(gain, spread) and gain > 0})
    return pd.DataFrame(rows)


def ladder_sentence(ladder: pd.DataFrame) -> str:
    """One sentence on whether size comparisons are meaningful at this scale."""
    wins = ladder["beyond noise"]
    if wins.all():
        return "Every larger preset beats the next smaller one beyond seed noise at 1 epoch."
    failing = ", ".join(f"{r.larger} vs {r.smaller} ({r.gain:+.3f} nats)" for r in ladder[~wins].itertuples())
    return (f"**Not every larger preset wins at 1 epoch beyond seed noise**: {failing}. Where the larger "
            "model is not better on fresh data, comparisons of how sizes degrade cannot test the claim.")


def unigram_margin(table: pd.DataFrame) -> pd.DataFrame:
    """How far each 1-epoch model beats a unigram model on content tokens (nats; goal >= 0.5)."""
    one = table[table.epochs == 1].assign(margin=lambda t: t.unigram_content_loss - t.val_content_loss)
    return one.groupby(["corpus", "size"], sort=False)[["unigram_content_loss", "val_content_loss", "margin",
                                                         "val_content_accuracy", "majority_content_accuracy"]].mean()


def mean_spread(table: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean and seed standard deviation of metrics per cell, formatted 'mean ± sd'."""
    grouped = table.groupby(by, sort=False)[metrics]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    out = pd.DataFrame(index=mean.index)
    for metric in metrics:
        out[metric] = [f"{m:.3f} ± {s:.3f}" if pd.notna(s) else f"{m:.3f}" for m, s in zip(mean[metric], sd[metric])]
    return out


def beside_table_1(table: pd.DataFrame, paper_table: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 rows (1 and 256 epochs) with our accuracy and loss per size beside them."""
    ours = table[table.epochs.isin(paper_table.epochs)].pivot_table(
        index="epochs", columns="size", values=["val_accuracy", "val_loss"], aggfunc="mean", sort=False)
    ours.columns = [f"ours {size}: {'Val Acc %' if metric == 'val_accuracy' else 'val loss'}"
                    for metric, size in ours.columns]
    ours = ours.apply(lambda col: col * 100 if "Acc" in col.name else col).round(3)
    return paper_table.set_index("epochs")[["pre-training data", "C4 Val Acc"]].rename(
        columns={"C4 Val Acc": "paper: C4 Val Acc %"}).join(ours)
