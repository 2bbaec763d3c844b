"""Rules that turn a results table into a verdict (findings 3.1-3.4; shared verdict machinery).

Every effect is a contrast of cell means with a 95 % t-interval (`lib.stats`). Five labels:

- *reproduced*: the interval supports the claim;
- *partly reproduced*: some parts of a claim with parts are reproduced;
- *not reproduced*: the interval rules the claim out (for a claimed direction: the interval lies
  below zero, or below the size the claim needs while the design could detect that size);
- *inconclusive*: the interval holds both no effect and an effect as large as the claim needs
  (or there is no seed spread to judge by);
- *untestable at this scale*: the design cannot pose the question (no size ladder, no crossing,
  no effect to compare against), with the reason in words.

Claims of absence ("does not help", "ends level") are equivalence tests against a margin fixed in
advance: `MARGIN` times a reference effect measured in the same runs. Verdicts judge validation
loss, the metric the data resolve at this scale; accuracies are content-token accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib import stats
from lib.paper import TOKENS_PER_PARAM_SLOPE
from lib.stats import Cells, Estimate
from lib.sweeps import FIXED_REPETITION

REPRODUCED, PARTLY, NOT = "reproduced", "partly reproduced", "not reproduced"
INCONCLUSIVE, UNTESTABLE = "inconclusive", "untestable at this scale"
LABELS = (REPRODUCED, PARTLY, NOT, INCONCLUSIVE, UNTESTABLE)
MARGIN = 0.5  # an absence claim holds if the effect stays within half of the reference effect
NO_SPREAD = "no spread: every cell has a single seed, so no interval can be given"


@dataclass
class Verdict:
    finding: str
    verdict: str
    sentence: str
    metric: str
    estimate: Estimate | None  # the headline contrast
    n_seeds: int
    claim: float | None = None  # the effect size the claim needs, in the estimate's units
    reason: str = ""  # why untestable or inconclusive
    details: dict = field(default_factory=dict)

    @property
    def effect(self) -> float:
        return self.estimate.estimate if self.estimate else float("nan")

    @property
    def low(self) -> float:
        return self.estimate.low if self.estimate and self.estimate.spread else float("nan")

    @property
    def high(self) -> float:
        return self.estimate.high if self.estimate and self.estimate.spread else float("nan")

    @property
    def detectable(self) -> float:
        return self.estimate.detectable if self.estimate and self.estimate.spread else float("nan")

    def _repr_markdown_(self) -> str:
        text = f"**Finding {self.finding}: {self.verdict}.** {self.sentence}"
        if self.reason:
            text += f" *Why {self.verdict.split(' at ')[0]}:* {self.reason}."
        if self.estimate and self.estimate.spread:
            text += (f"\n\n*Headline contrast:* {self.estimate.interval()} in {self.metric}, {self.estimate.df} "
                     f"degrees of freedom; smallest effect this design detects with 80 % power: "
                     f"{self.estimate.detectable:.3f}")
            if self.claim is not None and np.isfinite(self.claim):
                text += f"; effect the claim needs: {self.claim:.3f}"
            text += "."
        return text


def lower_is_better(metric: str) -> bool:
    return "loss" in metric


def n_seeds(table: pd.DataFrame) -> int:
    return int(table["seed"].nunique())


def complete(table: pd.DataFrame, cell: list[str]) -> bool:
    """Every cell has the same number of seeds (no missing runs)."""
    return table.groupby(cell)["seed"].nunique().nunique() == 1


def no_spread(finding: str, metric: str, table: pd.DataFrame) -> Verdict:
    """The verdict of a table with one seed per cell."""
    return Verdict(finding, INCONCLUSIVE, "Each cell has one run.", metric, None, n_seeds(table), reason=NO_SPREAD)


# --- decisions on intervals ----------------------------------------------------------------------

def directional(e: Estimate, claim: float | None = None) -> str:
    """A claim that an effect is positive. Reproduced if the interval lies above zero; not
    reproduced if it lies at or below zero, or below `claim` (the size the claim needs) while
    the detectable effect is no larger than `claim`; inconclusive otherwise."""
    if not e.spread:
        return INCONCLUSIVE
    if e.low > 0:
        return REPRODUCED
    if e.high <= 0:
        return NOT
    if claim is not None and claim > 0 and e.high < claim and e.detectable <= claim:
        return NOT
    return INCONCLUSIVE


def at_most(excess: Estimate) -> str:
    """A claim that an effect is at most its margin, given `excess` = effect - margin: reproduced
    if the one-sided 95 % bound of the excess is below zero, not reproduced if its interval lies
    above zero, inconclusive otherwise (the non-inferiority half of an equivalence test)."""
    if not excess.spread:
        return INCONCLUSIVE
    return REPRODUCED if excess.upper() < 0 else NOT if excess.low > 0 else INCONCLUSIVE


def within(minus_margin: Estimate, plus_margin: Estimate) -> str:
    """A claim that an effect lies within +-margin (two one-sided tests at 5 %), given the
    estimates of effect - margin and effect + margin."""
    if not minus_margin.spread:
        return INCONCLUSIVE
    if stats.tost(minus_margin, plus_margin) < stats.ALPHA:
        return REPRODUCED
    return NOT if minus_margin.low > 0 or plus_margin.high < 0 else INCONCLUSIVE


def combine(labels: list[str]) -> str:
    """The label of a claim with parts: reproduced if every part is, partly if some part is,
    not reproduced if every part is not, untestable if every part is, else inconclusive."""
    if all(label == REPRODUCED for label in labels):
        return REPRODUCED
    if REPRODUCED in labels:
        return PARTLY
    for label in (NOT, UNTESTABLE):
        if all(x == label for x in labels):
            return label
    return INCONCLUSIVE


def claim_size(reference: Estimate, fraction: float = MARGIN) -> float | None:
    """The effect a claim needs, as a fraction of a positive reference effect (None if it is not positive)."""
    value = fraction * reference.estimate
    return value if value > 0 else None


def yes(label: str) -> str:
    return {REPRODUCED: "yes", NOT: "no"}.get(label, label)


# --- shared tables --------------------------------------------------------------------------------

def size_ladder(table: pd.DataFrame, sizes: list[str], metric: str = "val_loss") -> pd.DataFrame:
    """At 1 epoch: does each size beat the next smaller one beyond noise (interval above zero)?"""
    cells = Cells(table[table.epochs == 1], "size", metric)
    rows = []
    for small, big in zip(sizes, sizes[1:]):
        gain = cells.contrast(stats.difference(small, big))
        rows.append({"smaller": small, "larger": big, f"{metric} smaller": cells[small], f"{metric} larger": cells[big],
                     "gain": gain.estimate, "gain low": gain.low, "gain high": gain.high,
                     "beyond noise": bool(gain.spread and gain.low > 0)})
    return pd.DataFrame(rows)


def ladder_failures(ladder: pd.DataFrame) -> str:
    """The size pairs where the larger model is not better beyond noise, in words ('' if none)."""
    failing = ladder[~ladder["beyond noise"]]
    return ", ".join(f"{r['larger']} vs {r['smaller']} ({r['gain']:+.3f}, 95 % CI {r['gain low']:+.3f} to "
                     f"{r['gain high']:+.3f})" for _, r in failing.iterrows())


def ladder_sentence(ladder: pd.DataFrame) -> str:
    """One sentence on whether size comparisons are meaningful at this scale."""
    failing = ladder_failures(ladder)
    if not failing:
        return "Every larger preset beats the next smaller one at 1 epoch, the interval of the gain above zero."
    return (f"**Not every larger preset wins at 1 epoch beyond seed noise**: {failing}. Where the larger "
            "model is not better on fresh data, comparisons of how sizes degrade cannot test the claim.")


def unigram_margin(table: pd.DataFrame) -> pd.DataFrame:
    """How far each 1-epoch model beats a unigram model on content tokens (nats; goal >= 0.5)."""
    one = table[table.epochs == 1].assign(margin=lambda t: t.unigram_content_loss - t.val_content_loss)
    return one.groupby(["corpus", "size"], sort=False)[["unigram_content_loss", "val_content_loss", "margin",
                                                         "val_content_accuracy", "majority_content_accuracy"]].mean()


SHORT_NAMES = {"val_loss": "loss", "best_val_loss": "best loss", "val_accuracy": "acc",
               "best_val_accuracy": "best acc", "val_content_loss": "content loss",
               "val_content_accuracy": "content acc", "val_first_loss": "first-token loss",
               "val_later_loss": "later-token loss", "val_encoder_use": "encoder use"}


def decimals_for(spread: float, low: int = 2, high: int = 4) -> int:
    """Decimals that keep two significant digits of a spread (between `low` and `high`)."""
    if not np.isfinite(spread) or spread <= 0:
        return 3
    return int(min(high, max(low, 1 - np.floor(np.log10(spread)))))


def mean_spread(table: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean and seed standard deviation of metrics per cell, formatted 'mean ± sd' with the decimals the
    sd supports; metric columns get their short names (`SHORT_NAMES`, explained on the methods page)."""
    grouped = table.groupby(by, sort=False)[metrics]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    out = pd.DataFrame(index=mean.index)
    for metric in metrics:
        out[SHORT_NAMES.get(metric, metric)] = [
            f"{m:.{decimals_for(s)}f} ± {s:.{decimals_for(s)}f}" if pd.notna(s) else f"{m:.3f} (one seed)"
            for m, s in zip(mean[metric], sd[metric])]
    return out


def interval_table(verdict: Verdict) -> pd.DataFrame:
    """One row per contrast a verdict tested: estimate, 95 % interval, degrees of freedom and the
    smallest effect detectable with 80 % power, with the decimals the interval supports."""
    estimates = verdict.details.get("estimates") or ({"headline": verdict.estimate} if verdict.estimate else {})
    rows = []
    for name, e in estimates.items():
        d = decimals_for((e.high - e.low) / 2 if e.spread else float("nan"))
        rows.append({"contrast": name, "estimate": f"{e.estimate:+.{d}f}",
                     "95 % interval": f"{e.low:+.{d}f} to {e.high:+.{d}f}" if e.spread else "no spread",
                     "df": e.df, "detectable": f"{e.detectable:.{d}f}" if e.spread else "no spread"})
    return pd.DataFrame(rows, columns=["contrast", "estimate", "95 % interval", "df", "detectable"]).set_index("contrast")


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


def tokens_grow_with_params(cross: pd.DataFrame, seeds: int = 0) -> Verdict:
    """3.1: the log-log slope of tokens needed on parameters. Untestable if fewer than two size
    pairs cross; reproduced if its interval lies above 0.5 and reaches the paper's linear range;
    partly if it lies above that range (faster than linear); not reproduced if it lies below 0.5."""
    found = cross.dropna(subset=["tokens_needed"])
    lo_rule, hi_rule = TOKENS_PER_PARAM_SLOPE
    if len(found) < 2:
        never, always = int(cross.never_overtaken.sum()), int(cross.bigger_always_better.sum())
        reason = (f"only {len(found)} of {len(cross)} size pairs cross within the runs' budget, too few for a "
                  f"slope: in {never} pair(s) the larger model never reaches the smaller one's loss at equal "
                  f"compute, in {always} it is ahead from the first evaluation")
        return Verdict("3.1", UNTESTABLE, "No slope can be fitted.", "val_loss", None, seeds, reason=reason,
                       details={"crossovers": cross})
    _, slope = stats.loglog_slope(found.params.to_numpy(), found.tokens_needed.to_numpy())
    if not slope.spread:
        verdict, reason = INCONCLUSIVE, "two crossings give a slope but no interval"
    elif slope.low > 0.5 and slope.high >= lo_rule and slope.low <= hi_rule:
        verdict, reason = REPRODUCED, ""
    elif slope.low > hi_rule:
        verdict, reason = PARTLY, ""
    elif slope.high < 0.5:
        verdict, reason = NOT, ""
    else:
        verdict, reason = INCONCLUSIVE, "the interval holds both slow growth (below 0.5) and linear growth"
    sentence = (f"Tokens needed before the next size pays off grow with parameters with log-log slope "
                + (slope.interval(2) if slope.spread else f"{slope.estimate:.2f}")
                + f" over {len(found)} crossings; the paper's rule asks for {lo_rule}-{hi_rule} (linear growth).")
    return Verdict("3.1", verdict, sentence, "log-log slope", slope, seeds, claim=1.0, reason=reason,
                   details={"crossovers": cross})


# --- 3.2 -----------------------------------------------------------------------------------------

def degradation_table(table: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """Per size and epochs: mean and seed std of the final metric and its change from 1 epoch."""
    summary = table.groupby(["size", "epochs"])[metric].agg(["mean", "std"]).reset_index()
    one = summary[summary.epochs == 1].set_index("size")["mean"]
    summary["change_from_1_epoch"] = summary["mean"] - summary["size"].map(one)
    return summary


def repetition_degrades(table: pd.DataFrame, sizes: list[str], metric: str = "val_loss") -> Verdict:
    """3.2. (a) at the most repetition each size's final metric sits above its curve's best;
    (b) the rise from 1 epoch to the most repetition is larger for the largest size than for the
    smallest (difference of differences; claim: half the smallest size's rise); (c) the largest
    size on U ends worse than the next size on 4U. Untestable if the size ladder fails at 1 epoch."""
    cells = Cells(table, ["size", "epochs"], metric)
    if not cells.df:
        return no_spread("3.2", metric, table)
    most = int(table.epochs.max())
    overfit = Cells(table.assign(overfit=table[metric] - table[f"best_{metric}"]), ["size", "epochs"], "overfit")
    a_est = {s: overfit.contrast({(s, most): 1.0}) for s in sizes}
    a = all(directional(e) == REPRODUCED for e in a_est.values())
    rise = {s: cells.contrast(stats.difference((s, most), (s, 1))) for s in sizes}
    b_est = cells.contrast(stats.difference_of_differences((sizes[-1], most), (sizes[-1], 1), (sizes[0], most), (sizes[0], 1)))
    claim = claim_size(rise[sizes[0]])
    b = directional(b_est, claim)
    c_est = cells.contrast(stats.difference((sizes[-1], most), (sizes[-2], most // 4)))
    c = directional(c_est)
    ladder = size_ladder(table, sizes, metric)
    failing = ladder_failures(ladder)
    if failing:
        verdict, reason = UNTESTABLE, (f"the size ladder does not hold at 1 epoch ({failing}), so how sizes "
                                       "degrade cannot test whether bigger models degrade more")
    else:
        verdict = NOT if b == NOT else INCONCLUSIVE if b == INCONCLUSIVE else REPRODUCED if a and c == REPRODUCED else PARTLY
        reason = "the interval of (b) holds both no difference and the difference the claim needs" if b == INCONCLUSIVE else ""
    sentence = (
        f"Final {metric} rises from 1 to {most} epochs by {', '.join(f'{s} {rise[s].estimate:+.3f}' for s in sizes)}. "
        f"(a) Every curve ends above its best at {most} epochs: {'yes' if a else 'no'} (final minus best "
        f"{', '.join(f'{e.estimate:.3f}' for e in a_est.values())}); (b) {sizes[-1]} degrades more than "
        f"{sizes[0]}: {yes(b)} ({b_est.interval()}); (c) {sizes[-1]} on T/{most} ends worse than {sizes[-2]} on "
        f"T/{most // 4}: {yes(c)} ({c_est.interval()}).")
    return Verdict("3.2", verdict, sentence, metric, b_est, n_seeds(table), claim=claim, reason=reason,
                   details={"a": a, "b": b, "c": c, "ladder": ladder, "estimates": {
                       **{f"(a) {s} final minus best": e for s, e in a_est.items()},
                       **{f"rise {s}": e for s, e in rise.items()},
                       f"(b) rise {sizes[-1]} minus rise {sizes[0]}": b_est, "(c) large on U minus next on 4U": c_est}})


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
    """3.3. (i) at a fixed repetition count, the gap to a 1-epoch run of equal T is smaller at the
    largest U than at the smallest (claim: half the smallest U's gap); (ii) the paper's design,
    same T: 2^6 epochs (bigger U) ends better than 2^8."""
    both = pd.concat([fixed, fresh])
    cells, paper_cells = Cells(both, ["total_tokens", "epochs"], metric), Cells(paper, "epochs", metric)
    if not cells.df or not paper_cells.df:
        return no_spread("3.3", metric, both)
    ts = sorted(fixed.total_tokens.unique())  # T = 16 U: smallest U first
    reps = int(fixed.epochs.iloc[0])
    gap = {t: cells.contrast(stats.difference((t, reps), (t, 1))) for t in ts}
    i_est = cells.contrast(stats.difference_of_differences((ts[0], reps), (ts[0], 1), (ts[-1], reps), (ts[-1], 1)))
    claim = claim_size(gap[ts[0]])
    i = directional(i_est, claim)
    few, many = int(paper.epochs.min()), int(paper.epochs.max())
    ii_est = paper_cells.contrast(stats.difference(many, few))
    ii = directional(ii_est)
    verdict = combine([i, ii])
    sentence = (f"(i) At {reps} epochs, the gap to a 1-epoch run of equal T is "
                f"{', '.join(f'{g.estimate:+.3f}' for g in gap.values())} for U growing 4x each step; it shrinks "
                f"from the smallest to the largest U: {yes(i)} ({i_est.interval()}); (ii) at equal T, {many} epochs "
                f"end worse than {few}: {yes(ii)} ({ii_est.interval()})."
                + ("" if i == REPRODUCED else " The paper's comparison confounds dataset size with repetition count."))
    return Verdict("3.3", verdict, sentence, metric, i_est, n_seeds(fixed), claim=claim,
                   reason="" if verdict in (REPRODUCED, PARTLY, NOT) else "neither part is decided by its interval",
                   details={"i": i, "ii": ii, "estimates": {"(i) gap at smallest U minus gap at largest U": i_est,
                                                            f"(ii) {many} minus {few} epochs": ii_est}})


# --- 3.4 -----------------------------------------------------------------------------------------

def relative_degradation(table: pd.DataFrame, epochs: int, metric: str = "val_loss") -> pd.DataFrame:
    """Per corpus and seed: (metric at `epochs` - metric at 1 epoch) / metric at 1 epoch."""
    wide = table.pivot_table(index=["corpus", "seed"], columns="epochs", values=metric)
    return ((wide[epochs] - wide[1]) / wide[1]).rename("relative_degradation").reset_index()


def quality_does_not_help(table: pd.DataFrame, clean: str = "wikipedia", noisy: str = "web",
                          metric: str = "val_loss") -> Verdict:
    """3.4: the clean corpus's relative rise from 1 epoch to the most repetition is at least
    (1 - MARGIN) times the noisy corpus's (non-inferiority: the clean corpus may degrade more,
    not clearly less). Untestable if the noisy corpus does not degrade beyond noise."""
    cells = Cells(table, ["corpus", "epochs"], metric)
    if not cells.df:
        return no_spread("3.4", metric, table)
    most = int(table.epochs.max())
    sign = 1.0 if lower_is_better(metric) else -1.0
    order = [(noisy, most), (noisy, 1), (clean, most), (clean, 1)]
    rel = {c: cells.delta([(c, most), (c, 1)], lambda a, b: sign * (a / b - 1)) for c in (noisy, clean)}
    effect = cells.delta(order, lambda a1, a0, b1, b0: sign * (a1 / a0 - b1 / b0))  # > 0: clean degrades less
    excess = cells.delta(order, lambda a1, a0, b1, b0: sign * ((1 - MARGIN) * (a1 / a0 - 1) - (b1 / b0 - 1)))
    if directional(rel[noisy]) != REPRODUCED:
        verdict, reason = UNTESTABLE, f"{noisy} shows no repetition rise beyond noise ({rel[noisy].interval()}), so there is no degradation for quality to prevent"
    else:
        verdict = at_most(excess)
        reason = "the interval holds both no difference and a difference beyond the margin" if verdict == INCONCLUSIVE else ""
    sentence = (f"From 1 to {most} epochs, {metric} degrades by {rel[clean].estimate:.1%} on {clean} and "
                f"{rel[noisy].estimate:.1%} on {noisy} (relative, each on its own held-out set). {noisy} minus "
                f"{clean}: {effect.interval(4)}; margin fixed in advance: {MARGIN:.0%} of {noisy}'s rise "
                f"({MARGIN * rel[noisy].estimate:.4f}).")
    return Verdict("3.4", verdict, sentence, f"relative {metric} rise", effect, n_seeds(table),
                   claim=MARGIN * rel[noisy].estimate, reason=reason,
                   details={"relative": {c: e.estimate for c, e in rel.items()},
                            "estimates": {f"relative rise {noisy}": rel[noisy], f"relative rise {clean}": rel[clean],
                                          f"{noisy} minus {clean}": effect, "excess over the margin": excess}})


def beside_table_1(table: pd.DataFrame, paper_table: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 rows (1 and 256 epochs) with our accuracy (all targets and content
    tokens only, named) and loss per size beside them."""
    names = {"val_accuracy": "Val Acc % (all targets)", "val_content_accuracy": "Val Acc % (content tokens)",
             "val_loss": "val loss"}
    ours = table[table.epochs.isin(paper_table.epochs)].pivot_table(
        index="epochs", columns="size", values=list(names), aggfunc="mean", sort=False)
    ours.columns = [f"ours {size}: {names[metric]}" for metric, size in ours.columns]
    ours = ours.apply(lambda col: col * 100 if "Acc" in col.name else col).round(3)
    return paper_table.set_index("epochs")[["pre-training data", "C4 Val Acc"]].rename(
        columns={"C4 Val Acc": "paper: C4 Val Acc %"}).join(ours)
