"""Rules for findings 3.5-3.11 (model, objective and regularizer variants), on the intervals of
`lib.stats` with the labels and decisions of `lib.verdicts`. Metric: final validation loss on the
span-corruption probe (content-token accuracy is reported beside it).
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from lib import stats
from lib.paper import TABLE_1, TABLE_3, TABLE_4
from lib.paths import read_bench
from lib.stats import Cells
from lib.verdicts import (INCONCLUSIVE, MARGIN, NOT, PARTLY, REPRODUCED, UNTESTABLE, Verdict, at_most, claim_size,
                          combine, directional, lower_is_better, n_seeds, no_spread, within, yes)

METRIC = "val_loss"
MIN_RATES = 5  # a permutation null over the rates reaches 5 % only with enough rates (5! = 120 orderings)


@functools.cache
def paper_ul2_excess() -> float:
    """How much more UL2 loses than span corruption in the paper's Table 3, as a fraction of span
    corruption's loss (SQuAD EM)."""
    drop = TABLE_3.groupby("objective")["SQuAD EM"].agg(lambda s: s.iloc[0] - s.iloc[-1])
    return float(drop["ul2"] / drop["span"] - 1)


@functools.cache
def paper_dropout_share() -> float:
    """The share of the gap to unique data that dropout recovers in the paper's Table 4."""
    acc = TABLE_4.set_index("regularizer")["C4 Val Acc"]
    unique = float(TABLE_1.loc[TABLE_1.epochs == 1, "C4 Val Acc"].iloc[0])
    return float((acc["dropout"] - acc["none"]) / (unique - acc["none"]))


def degradation(table: pd.DataFrame, by: str, metric: str = METRIC) -> pd.DataFrame:
    """Per value of `by`: mean final metric on unique data (1 epoch), on repeated data (the most
    epochs) and the rise between them."""
    most = table.epochs.max()
    means = table.pivot_table(index=by, columns="epochs", values=metric, aggfunc="mean", sort=False)
    return pd.DataFrame({"unique": means[1], "repeated": means[most], "rise": means[most] - means[1]})


def _rise(name: str, most: int) -> dict:
    return stats.difference((name, most), (name, 1))


def params_not_flops(table: pd.DataFrame, proxy_experts: int, baseline_experts: int, metric: str = METRIC) -> Verdict:
    """3.5. (a) FLOPs at fixed parameters: applying every layer twice changes the rise from unique
    to repeated data by less than MARGIN of the dense model's rise (equivalence; untestable if the
    dense model does not degrade); (b) parameters at fixed FLOPs: the many-expert MoE rises more
    than the few-expert one of the same FLOPs, `baseline_experts` (with top-k routing, k experts:
    every token passes through all of them) (claim: MARGIN of the baseline's rise)."""
    cells = Cells(table, ["architecture", "epochs"], metric)
    if not cells.df:
        return no_spread("3.5", metric, table)
    most, moe, base = int(table.epochs.max()), f"MoE {proxy_experts}", f"MoE {baseline_experts}"
    rise = {name: cells.contrast(_rise(name, most)) for name in ("dense", "shared x2", base, moe)}
    flops = stats.difference_of_differences(("shared x2", most), ("shared x2", 1), ("dense", most), ("dense", 1))
    dense = _rise("dense", most)
    flops_effect = cells.contrast(flops)
    minus = cells.contrast(stats.weighted_sum([flops, dense], [1.0, -MARGIN]))
    plus = cells.contrast(stats.weighted_sum([flops, dense], [1.0, MARGIN]))
    a = within(minus, plus) if directional(rise["dense"]) == REPRODUCED else UNTESTABLE
    params_effect = cells.contrast(stats.difference_of_differences((moe, most), (moe, 1), (base, most), (base, 1)))
    claim = claim_size(rise[base])
    b = directional(params_effect, claim)
    verdict = combine([a, b])
    reason = {UNTESTABLE: "the dense model does not degrade beyond noise, so neither comparison has a rise to change",
              INCONCLUSIVE: "the intervals do not decide the parts that are not reproduced"}.get(verdict, "")
    sentence = (
        f"Rise in final {metric} from unique to repeated data: "
        + ", ".join(f"{name} {e.estimate:+.3f}" for name, e in rise.items())
        + f". (a) Twice the FLOPs at the same parameters changes the rise by {flops_effect.interval()}; within "
        f"{MARGIN:.0%} of the dense rise (equivalence test): {yes(a)}. (b) {proxy_experts} experts instead of {baseline_experts} "
        f"(same FLOPs, more parameters) change it by {params_effect.interval()}: more degradation {yes(b)}.")
    return Verdict("3.5", verdict, sentence, metric, params_effect, n_seeds(table), claim=claim, reason=reason,
                   details={"a": a, "b": b, "estimates": {"(a) rise shared x2 minus dense": flops_effect,
                                                          f"(b) rise {moe} minus {base}": params_effect,
                                                          **{f"rise {k}": e for k, e in rise.items()}}})


def params_not_flops_by_size(table: pd.DataFrame, experts: int, baseline_experts: int,
                             metric: str = METRIC) -> Verdict:
    """3.5 at each backbone size in `table` (smallest first), combined by `across_sizes`."""
    return across_sizes("3.5", {size: params_not_flops(rows, experts, baseline_experts, metric)
                                for size, rows in table.groupby("size", sort=False)})


def curve_shape(curves: pd.DataFrame, by: str, metric: str = METRIC) -> pd.DataFrame:
    """Per run: the tokens at its best evaluation and its final minus best metric."""
    runs: dict = {}
    for key, tokens, value in zip(zip(curves[by].tolist(), curves.seed.tolist()), curves.tokens.tolist(),
                                  curves[metric].tolist()):
        runs.setdefault(key, []).append((tokens, value))
    rows = []
    for (name, seed), points in runs.items():
        best = min(points, key=lambda p: p[1])
        rows.append({by: name, "seed": seed, "best_tokens": best[0], "final_minus_best": max(points)[1] - best[1]})
    return pd.DataFrame(rows)


def seconds_per_run(table: pd.DataFrame, dense: str, moe: str) -> tuple[dict[str, float], str]:
    """Training seconds of one run of each architecture, and where they come from: the quiet-machine
    measurement of `python -m lib.bench --only moe_proxy` if it measured this profile's pair, else
    the runs' own times (which vary with whatever else the machine was doing)."""
    tokens = float(table.total_tokens.iloc[0])
    presets = {arch: size if arch == dense else f"{size} {arch}"
               for arch, size in table.groupby("architecture")["size"].first().items()}
    bench = read_bench()
    measured = {row["preset"]: row for row in bench.get("moe_proxy") or []}
    if bench.get("profile") == table.profile.iloc[0] and all(presets.get(a) in measured for a in (dense, moe)):
        return {a: tokens / measured[presets[a]]["tokens_per_s"] for a in (dense, moe)}, "the benchmark"
    return table.groupby("architecture")["train_seconds"].mean().to_dict(), "the runs' own times"


def across_sizes(finding: str, by_size: dict[str, Verdict]) -> Verdict:
    """One finding tested at several sizes (or pairs of sizes), smallest first: reproduced if it is at
    every size, partly if it or part of it is at some (`verdicts.combine`); the headline contrast is
    the largest size's; every size's sentence, reason and intervals are kept, prefixed by the size's
    name. One size: its own verdict."""
    if len(by_size) == 1:
        return next(iter(by_size.values()))
    largest = list(by_size)[-1]
    head = by_size[largest]
    labels = [v.verdict for v in by_size.values()]
    label = PARTLY if PARTLY in labels else combine(labels)  # part of the claim holds at some size
    sentence = " ".join(f"**{size}:** {v.verdict}. {v.sentence}" for size, v in by_size.items())
    distinct = {v.reason for v in by_size.values()}
    reason = distinct.pop() if len(distinct) == 1 else "; ".join(f"{size}: {v.reason}" for size, v in by_size.items() if v.reason)
    estimates = {f"{size} {name}": e for size, v in by_size.items()
                 for name, e in v.details.get("estimates", {}).items()}
    return Verdict(finding, label, sentence, head.metric, head.estimate, min(v.n_seeds for v in by_size.values()),
                   claim=head.claim, reason=reason,
                   details={"by_size": by_size, "headline_size": largest, "estimates": estimates})


PEAK_BAND = (0.75, 1.25)  # the proxy's best point within +-25 % of the dense model's, in tokens


def cheap_moe_predicts(table: pd.DataFrame, repeated_curves: pd.DataFrame, dense: str, moe: str,
                       metric: str = METRIC, seconds: tuple[dict[str, float], str] | None = None) -> Verdict:
    """3.6. On repeated data the MoE proxy's curve has the dense model's shape: its best point
    within PEAK_BAND of the dense model's in tokens (the 90 % interval of the ratio inside it) and
    its final-minus-best drop within MARGIN of the dense model's drop (equivalence); and it is
    cheaper in training wall-clock here (`seconds`: per-run seconds and their source, by default
    `seconds_per_run`). Untestable if the dense model does not overfit."""
    shape = curve_shape(repeated_curves, "architecture", metric)
    drops, peaks = Cells(shape, "architecture", "final_minus_best"), Cells(shape, "architecture", "best_tokens")
    if not drops.df:
        return no_spread("3.6", metric, table)
    dense_drop = drops.contrast({dense: 1.0})
    gap = stats.difference(moe, dense)
    drop_gap = drops.contrast(gap)
    minus = drops.contrast(stats.weighted_sum([gap, {dense: 1.0}], [1.0, -MARGIN]))
    plus = drops.contrast(stats.weighted_sum([gap, {dense: 1.0}], [1.0, MARGIN]))
    ratio = peaks.delta([moe, dense], lambda m, d: m / d)
    band = ratio.spread and PEAK_BAND[0] < ratio.lower() and ratio.upper() < PEAK_BAND[1]
    outside = ratio.spread and (ratio.low > PEAK_BAND[1] or ratio.high < PEAK_BAND[0])
    drop_label = within(minus, plus)
    shape_label = (REPRODUCED if band and drop_label == REPRODUCED else
                   NOT if outside or drop_label == NOT else INCONCLUSIVE)
    flops, params = (Cells(table, "architecture", column) for column in ("flops_per_input_token", "params"))
    flops_ratio, params_ratio = flops[moe] / flops[dense], params[moe] / params[dense]
    seconds, source = seconds or seconds_per_run(table, dense, moe)
    wall_ratio = seconds[moe] / seconds[dense]
    cheaper = wall_ratio < 1
    if directional(dense_drop) != REPRODUCED:
        verdict, reason = UNTESTABLE, f"the {dense} model does not overfit beyond noise ({dense_drop.interval()}), so there is no curve shape to predict"
    elif shape_label == REPRODUCED:
        verdict, reason = (REPRODUCED if cheaper else PARTLY), ""
    else:
        verdict = shape_label
        reason = "the intervals of the peak ratio and the drop hold both a match and a mismatch" if verdict == INCONCLUSIVE else ""
    sentence = (
        f"The {moe} proxy has {params_ratio:.2f}x the parameters of the {dense} model at {flops_ratio:.2f}x its "
        f"FLOPs per token and {wall_ratio:.2f}x its training wall-clock here (from {source}). On repeated data its "
        f"best point comes at {ratio.interval(2)} times the dense model's tokens (band {PEAK_BAND[0]}-{PEAK_BAND[1]}), "
        f"and its final-minus-best drop differs by {drop_gap.interval()} from the dense model's "
        f"{dense_drop.estimate:.3f} (margin {MARGIN:.0%} of it). Do the curves match in shape? {yes(shape_label)}"
        + ("" if cheaper else "; the proxy is not faster on this CPU") + ".")
    return Verdict("3.6", verdict, sentence, "final minus best " + metric, drop_gap, n_seeds(table),
                   claim=MARGIN * dense_drop.estimate, reason=reason,
                   details={"peak_ratio": ratio.estimate, "flops_ratio": float(flops_ratio), "wall_ratio": float(wall_ratio),
                            "params_ratio": float(params_ratio),
                            "estimates": {"drop, MoE minus dense": drop_gap, "peak ratio, MoE over dense": ratio,
                                          f"drop {dense}": dense_drop}})


def moe_pair(table: pd.DataFrame, dense_size: str, backbone: str, moe: str) -> pd.DataFrame:
    """The rows of one 3.6 pair in a table holding several: the dense size's dense runs and the
    backbone's `moe` runs."""
    dense = (table["size"] == dense_size) & (table.architecture == "dense")
    return table[dense | ((table["size"] == backbone) & (table.architecture == moe))]


def cheap_moe_by_size(table: pd.DataFrame, repeated_curves: pd.DataFrame, pairs: dict[str, tuple[str, int]],
                      metric: str = METRIC) -> Verdict:
    """3.6 for each pair in `pairs` (proxy backbone -> (dense size, experts), smallest first),
    combined by `across_sizes`."""
    by_size = {}
    for backbone, (dense_size, experts) in pairs.items():
        moe = f"MoE {experts}"
        by_size[f"{backbone} with {experts} experts vs {dense_size}"] = cheap_moe_predicts(moe_pair(table, dense_size, backbone, moe),
                                               moe_pair(repeated_curves, dense_size, backbone, moe), "dense", moe, metric)
    return across_sizes("3.6", by_size)


def ul2_degrades_more(table: pd.DataFrame, metric: str = METRIC) -> Verdict:
    """3.7. UL2's rise from unique to repeated data exceeds span corruption's (difference of
    differences; claim: as much more, relative to span corruption's rise, as in the paper's Table 3)."""
    cells = Cells(table, ["objective", "epochs"], metric)
    if not cells.df:
        return no_spread("3.7", metric, table)
    most = int(table.epochs.max())
    span = cells.contrast(_rise("span", most))
    ul2 = cells.contrast(_rise("ul2", most))
    effect = cells.contrast(stats.difference_of_differences(("ul2", most), ("ul2", 1), ("span", most), ("span", 1)))
    claim = claim_size(span, paper_ul2_excess())
    verdict = directional(effect, claim)
    sentence = (
        f"On the common span-corruption probe, final {metric} rises from unique to repeated data by "
        f"{span.estimate:+.3f} for span corruption and {ul2.estimate:+.3f} for UL2; UL2 minus span corruption "
        f"{effect.interval()} ({n_seeds(table)} seeds). The paper's UL2 loses {paper_ul2_excess():.0%} more than "
        f"span corruption, which here would be {claim if claim else float('nan'):.3f}.")
    reason = "the interval holds both no difference and the paper's relative difference" if verdict == INCONCLUSIVE else ""
    return Verdict("3.7", verdict, sentence, metric, effect, n_seeds(table), claim=claim, reason=reason,
                   details={"estimates": {"rise UL2 minus rise span": effect, "rise span": span, "rise UL2": ul2}})


def regularizer_effects(table: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """Per regularizer on repeated data: mean final metric, its gain over none (positive = better)
    and the share of the gap to unique data (1 epoch, no regularizer) that it recovers."""
    most = table.epochs.max()
    repeated = table[table.epochs == most]
    reference = table[table.epochs == 1][metric].mean()
    mean = repeated.groupby("regularizer", sort=False)[metric].mean()
    sign = -1 if lower_is_better(metric) else 1
    gain = sign * (mean - mean["none"])
    return pd.DataFrame({metric: mean, "gain": gain, "gap_recovered": gain / (sign * (reference - mean["none"]))})


def every(labels: list[str]) -> str:
    """A claim about every member: reproduced if it holds for each, not if it fails for one."""
    return REPRODUCED if all(x == REPRODUCED for x in labels) else NOT if NOT in labels else INCONCLUSIVE


def dropout_helps_most(table: pd.DataFrame, dropout: str = "dropout 0.1", metric: str = METRIC) -> Verdict:
    """3.8. (a) dropout beats no regularizer (claim: the paper's share of the gap to unique data);
    (b) nothing stacked on dropout improves on it by more than MARGIN of dropout's gain
    (non-inferiority); (c) every other regularizer alone is worse than dropout (one that matches
    dropout within that margin, or beats it, makes (c) not reproduced)."""
    most = int(table.epochs.max())
    sign = 1.0 if lower_is_better(metric) else -1.0  # gains below are positive when better
    repeated = table[table.epochs == most]
    cells = Cells(repeated, "regularizer", metric)
    if not cells.df:
        return no_spread("3.8", metric, table)
    unique = Cells(table[table.epochs == 1], "epochs", metric)[1]
    gain_coef = {"none": sign, dropout: -sign}
    gain = cells.contrast(gain_coef)
    claim = paper_dropout_share() * sign * (cells["none"] - unique)
    a = directional(gain, claim if claim > 0 else None)
    names = cells.keys
    stacked = [n for n in names if n.startswith(f"{dropout} + ")]
    alone = [n for n in names if "dropout" not in n and n != "none"]
    b_parts, c_parts, estimates = {}, {}, {"(a) dropout gain over none": gain}
    for name in stacked:  # improvement of stacked over dropout alone, minus the margin
        improve = {dropout: sign, name: -sign}
        estimates[f"(b) {name} over {dropout}"] = cells.contrast(improve)
        b_parts[name] = at_most(cells.contrast(stats.weighted_sum([improve, gain_coef], [1.0, -MARGIN])))
    for name in alone:  # how much dropout beats the other regularizer
        beats = {name: sign, dropout: -sign}
        estimates[f"(c) {dropout} over {name}"] = e = cells.contrast(beats)
        match = within(cells.contrast(stats.weighted_sum([beats, gain_coef], [1.0, -MARGIN])),
                       cells.contrast(stats.weighted_sum([beats, gain_coef], [1.0, MARGIN])))
        c_parts[name] = REPRODUCED if e.low > 0 else NOT if match == REPRODUCED or e.high <= 0 else INCONCLUSIVE
    b, c = every(list(b_parts.values())), every(list(c_parts.values()))
    verdict = a if a != REPRODUCED else combine([a, b, c])
    recovered = gain.estimate / (sign * (cells["none"] - unique))
    reason = {INCONCLUSIVE: "the interval of a part holds both the claim and its absence"}.get(verdict, "")
    sentence = (
        f"On repeated data, {dropout} improves the final {metric} by {gain.interval()} "
        f"({recovered:.0%} of the gap to unique data; the paper's share would be "
        f"{claim:.3f}): {yes(a)}. (b) Nothing stacked on dropout adds more than {MARGIN:.0%} of its gain: {yes(b)}"
        + (f" ({', '.join(f'{n}: {yes(v)}' for n, v in b_parts.items())})" if b_parts else "")
        + f". (c) Every other regularizer alone is worse than dropout: {yes(c)}"
        + (f" ({', '.join(f'{n}: {yes(v)}' for n, v in c_parts.items())})" if c_parts else "") + ".")
    return Verdict("3.8", verdict, sentence, metric, gain, n_seeds(table), claim=claim, reason=reason,
                   details={"a": a, "b": b, "c": c, "b_parts": b_parts, "c_parts": c_parts,
                            "estimates": estimates})


def late_dropout_matches(table: pd.DataFrame, curves: pd.DataFrame, starts: tuple[float, ...],
                         dropout: str = "dropout 0.1", metric: str = METRIC) -> Verdict:
    """3.9. Dropout switched on late ends no worse than dropout from the start by more than MARGIN
    of dropout's own gain over none (non-inferiority), and leads it at the last evaluation before
    the switch. Untestable if dropout itself gains nothing beyond noise."""
    cells = Cells(table, "regularizer", metric)
    if not cells.df:
        return no_spread("3.9", metric, table)
    gain_coef = stats.difference("none", dropout)
    gain = cells.contrast(gain_coef)
    ends, leads, estimates = {}, {}, {"dropout gain over none": gain}
    for start in starts:
        name = f"{dropout} from {start:.0%}"
        worse = stats.difference(name, dropout)
        estimates[f"{name}: final minus {dropout}"] = cells.contrast(worse)
        ends[name] = at_most(cells.contrast(stats.weighted_sum([worse, gain_coef], [1.0, -MARGIN])))
        switch_tokens = start * curves.tokens.max()
        before = curves[(curves.tokens > 0) & (curves.tokens <= switch_tokens)]
        at = Cells(before[before.tokens == before.tokens.max()], "regularizer", metric)
        estimates[f"{name}: lead before the switch"] = lead = at.contrast(stats.difference(dropout, name))
        leads[name] = directional(lead)
    if directional(gain) != REPRODUCED:
        verdict, reason = UNTESTABLE, f"dropout from the start gains nothing beyond noise over none ({gain.interval()}), so there is nothing for late dropout to match"
    elif all(v == NOT for v in ends.values()):
        verdict, reason = NOT, ""
    elif all(v == REPRODUCED for v in [*ends.values(), *leads.values()]):
        verdict, reason = REPRODUCED, ""
    elif REPRODUCED in ends.values():
        verdict, reason = PARTLY, ""
    else:
        verdict, reason = INCONCLUSIVE, "no late switch is shown to end level"
    sentence = "; ".join(
        f"{name}: ends {estimates[f'{name}: final minus {dropout}'].interval()} against dropout from the start "
        f"(level within {MARGIN:.0%} of dropout's gain: {yes(ends[name])}), leads before the switch by "
        f"{estimates[f'{name}: lead before the switch'].interval()} ({yes(leads[name])})" for name in ends) + "."
    worst = max(ends, key=lambda n: estimates[f"{n}: final minus {dropout}"].estimate)
    return Verdict("3.9", verdict, sentence, metric, estimates[f"{worst}: final minus {dropout}"], n_seeds(table),
                   claim=MARGIN * gain.estimate, reason=reason,
                   details={"ends": ends, "leads": leads, "estimates": estimates})


def stable_repeated(table: pd.DataFrame, by: list[str], metric: str = METRIC) -> tuple[pd.DataFrame, dict]:
    """The repeated-data runs without the cells (`by`) whose seed spread is an outlier
    (`stats.variance_outliers`), and those cells with their sd."""
    repeated = table[table.epochs == table.epochs.max()] if "epochs" in table else table
    flagged = stats.variance_outliers(repeated, by, metric)
    keys = pd.Series(list(zip(*(repeated[c] for c in by))), index=repeated.index)
    return repeated[~keys.isin(list(flagged))], flagged


def outlier_sentence(flagged: dict, metric: str = METRIC) -> str:
    """Names the cells `stable_repeated` left out ('' if none)."""
    if not flagged:
        return ""
    cells = ", ".join(" at ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in cell) + f" (sd {sd:.2f})"
                      for cell, sd in flagged.items())
    return (f" Left out: {cells}, whose seeds' final {metric} spread far more than any other cell's "
            "(Cochran's test, 1 %); such a cell would set the pooled variance of every interval.")


def rate_cells(table: pd.DataFrame, sizes: list[str], metric: str = METRIC):
    """3.10's repeated-data cells by size and rate, outlying ones left out (`stable_repeated`): the
    metric's cells, its final-minus-best cells, the rates each size kept, each size's best rate
    (lowest mean) and the cells left out."""
    repeated, flagged = stable_repeated(table, ["size", "dropout"], metric)
    cells = Cells(repeated, ["size", "dropout"], metric)
    overfit = Cells(repeated.assign(overfit=repeated[metric] - repeated[f"best_{metric}"]), ["size", "dropout"], "overfit")
    kept = {s: sorted(repeated[repeated["size"] == s].dropout.unique()) for s in sizes}
    best_rate = {s: min(kept[s], key=lambda r: cells[(s, r)]) for s in sizes}
    return cells, overfit, kept, best_rate, flagged


def best_rates(table: pd.DataFrame, sizes: list[str], metric: str = METRIC) -> pd.DataFrame:
    """3.10, per size on repeated data: the best dropout rate (lowest mean final metric), its benefit
    over no dropout and the curve's final-minus-best at that rate, each with its 95 % interval
    (cells with an outlying seed spread left out: `stable_repeated`)."""
    cells, overfit, _, best_rate, _ = rate_cells(table, sizes, metric)
    rows = []
    for size in sizes:
        best = best_rate[size]
        benefit = (cells.contrast(stats.difference((size, 0.0), (size, best))).interval()
                   if (size, 0.0) in cells.mean else "no dropout left out")
        decline = overfit.contrast({(size, best): 1.0})
        rows.append({"size": size, "best rate": best, f"{metric} at best rate": cells[(size, best)],
                     "benefit over no dropout": benefit, "final minus best at best rate": decline.interval()})
    return pd.DataFrame(rows).set_index("size")


def dropout_needs_tuning(table: pd.DataFrame, sizes: list[str], size_caveat: str, metric: str = METRIC) -> Verdict:
    """3.10. (a) the best dropout rate differs across sizes: a size x rate interaction beyond
    noise (F test) with different best rates; untestable where sizes cannot stand for the paper's
    (`size_caveat`, from `lib.profile_check.size_caveat`: the ladder fails, or the encoder is
    idle); (b) the largest size, at its best
    rate, still ends above its curve's best. Reproduced if both, partly if one; not reproduced
    if the largest size's curve ends at its best. Cells with an outlying seed spread are left out
    (`stable_repeated`); the F test uses the rates every size kept."""
    cells, overfit, kept, best_rate, flagged = rate_cells(table, sizes, metric)
    if not cells.df:
        return no_spread("3.10", metric, table)
    rates = [r for r in kept[sizes[0]] if all(r in kept[s] for s in sizes)]
    f, p = stats.interaction_f_test(cells, sizes, rates)
    shifts = len(set(best_rate.values())) > 1
    a = UNTESTABLE if size_caveat else REPRODUCED if p < stats.ALPHA and shifts else INCONCLUSIVE
    decline = overfit.contrast({(sizes[-1], best_rate[sizes[-1]]): 1.0})
    b = directional(decline)
    if a == UNTESTABLE and b != REPRODUCED:
        verdict, reason = UNTESTABLE, f"{size_caveat}, and the largest size shows no late decline beyond noise"
    elif b == NOT and a != REPRODUCED:
        verdict, reason = NOT, ""
    else:
        verdict = combine([x for x in (a, b) if x != UNTESTABLE]) if a != UNTESTABLE else PARTLY
        reason = f"(a) is untestable: {size_caveat}" if a == UNTESTABLE else (
            "(a) no size x rate interaction beyond noise" if verdict == INCONCLUSIVE else "")
    sentence = (
        "Best dropout rate on repeated data: " + ", ".join(f"{s} {best_rate[s]:g}" for s in sizes)
        + f". (a) Size x rate interaction: F = {f:.2f}, p = {p:.3f}; the best rate shifts with size: {yes(a)}. "
        f"(b) At its best rate {sizes[-1]} ends {decline.interval()} above its curve's best: still declines late: {yes(b)}."
        + outlier_sentence(flagged, metric))
    return Verdict("3.10", verdict, sentence, "final minus best " + metric, decline, n_seeds(table), reason=reason,
                   details={"best_rate": best_rate, "interaction_p": p, "a": a, "b": b,
                            "estimates": {f"(b) {sizes[-1]} final minus best at rate {best_rate[sizes[-1]]:g}": decline}})


def sweep_cost(table: pd.DataFrame, dense: str, moe: str,
               seconds: tuple[dict[str, float], str] | None = None) -> tuple[pd.DataFrame, str]:
    """Per architecture: runs, training FLOPs and training seconds of the sweep (seconds per run from
    `seconds`, by default `seconds_per_run`), and where the seconds come from."""
    seconds, source = seconds or seconds_per_run(table, dense, moe)
    flops = Cells(table, "architecture", "train_flops")
    runs = pd.Series(flops.n)
    cost = pd.DataFrame({"runs": runs, "train_flops": runs * pd.Series(flops.mean)})
    cost["train_seconds"] = cost.runs * pd.Series(seconds)
    return cost, source


def interior_optimum(cells: Cells, arch: str, rates: list[float]) -> bool:
    """The best rate lies inside the grid and beats both edge rates beyond noise."""
    best = min(rates, key=lambda r: cells[(arch, r)])
    if best in (rates[0], rates[-1]):
        return False
    return all(directional(cells.contrast(stats.difference((arch, edge), (arch, best)))) == REPRODUCED
               for edge in (rates[0], rates[-1]))


def moe_transfer(table: pd.DataFrame, dense: str, moe: str, metric: str = METRIC,
                 seconds: tuple[dict[str, float], str] | None = None) -> Verdict:
    """3.11. Transfer needs an interior optimum in at least one model (else untestable). The rates'
    rankings agree beyond chance (Spearman against its exact permutation null, 5 %); not
    reproduced if the MoE's best rate is worse for the dense model than the dense model's own
    best, beyond noise. Reproduced if, in addition, the MoE sweep plus one confirming dense run
    costs less wall-clock than the dense sweep (`seconds` as in `cheap_moe_predicts`). A cell with an
    outlying seed spread is left out (`stable_repeated`), and its rate from both rankings."""
    stable, flagged = stable_repeated(table, ["architecture", "dropout"], metric)
    cells = Cells(stable, ["architecture", "dropout"], metric)
    if not cells.df:
        return no_spread("3.11", metric, table)
    rates = [r for r in sorted(stable.dropout.unique()) if all((arch, r) in cells.mean for arch in (dense, moe))]
    best = {arch: min(rates, key=lambda r: cells[(arch, r)]) for arch in (dense, moe)}
    rho, p = stats.permutation_p(np.array([cells[(dense, r)] for r in rates]), np.array([cells[(moe, r)] for r in rates]))
    miss = cells.contrast(stats.difference((dense, best[moe]), (dense, best[dense])))
    cost, source = sweep_cost(table, dense, moe, seconds)
    cost = cost[["train_flops", "train_seconds"]]
    sweep = cost.loc[moe] / cost.loc[dense]
    with_confirmation = (cost.loc[moe] + cost.loc[dense] / table.dropout.nunique()) / cost.loc[dense]
    cheaper = with_confirmation["train_seconds"] < 1
    interior = {arch: interior_optimum(cells, arch, rates) for arch in (dense, moe)}
    reachable = 1 / np.prod(np.arange(1, len(rates) + 1)) < stats.ALPHA
    if not any(interior.values()):
        verdict = UNTESTABLE
        reason = (f"the best rate sits at an edge of the grid ({', '.join(f'{r:g}' for r in rates)}) or does not "
                  "beat both edges beyond noise in both models, so agreement on it tests nothing; a test needs rates "
                  f"on both sides of the optimum (at least {MIN_RATES}, as the authors swept about 0.1-0.5)")
    elif best[moe] != best[dense] and directional(miss) == REPRODUCED:
        verdict, reason = NOT, ""
    elif p < stats.ALPHA:
        verdict, reason = (REPRODUCED if cheaper else PARTLY), ""
    else:
        verdict = INCONCLUSIVE
        reason = ("the rankings do not agree beyond chance" if reachable else
                  f"with {len(rates)} rates the permutation null cannot reach 5 % (smallest p = 1/{len(rates)}!); at least {MIN_RATES} rates are needed")
    sentence = (
        f"Best dropout rate: {best[moe]:g} on the {moe} proxy and {best[dense]:g} on the {dense} model; the dense "
        f"model at the proxy's best rate loses {miss.interval()} against its own best. Spearman over the rates "
        f"{rho:+.2f}, permutation p = {p:.3f}. The MoE sweep costs {sweep['train_flops']:.2f}x the dense sweep's "
        f"FLOPs and {sweep['train_seconds']:.2f}x its wall-clock here (from {source}); with one confirming dense "
        f"run, {with_confirmation['train_seconds']:.2f}x." + outlier_sentence(flagged, metric))
    return Verdict("3.11", verdict, sentence, metric, miss, n_seeds(table), reason=reason,
                   details={"best": best, "spearman": rho, "permutation_p": p, "interior": interior,
                            "sweep_cost": sweep.to_dict(), "with_confirmation": with_confirmation.to_dict(),
                            "estimates": {"dense at the proxy's best rate minus its own best": miss}})


def beside_table_3(table: pd.DataFrame, paper_table: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 3 with our probe loss and content-token accuracy beside it; our repeated
    cell stands in the row of the paper's most-repeated one (2^8 epochs)."""
    ours = table.pivot_table(index=["objective", "epochs"], values=["val_loss", "val_content_accuracy"], aggfunc="mean")
    ours = ours.rename(index={table.epochs.max(): paper_table.epochs.max()}, level="epochs")
    return paper_table.set_index(["objective", "epochs"]).join(ours.rename(
        columns={"val_loss": "ours: probe val loss", "val_content_accuracy": "ours: probe Val Acc (content tokens)"}))


def beside_table_4(table: pd.DataFrame, paper_table: pd.DataFrame, dropout: str = "dropout 0.1") -> pd.DataFrame:
    """The paper's Table 4 with ours beside it: each regularizer alone and stacked on dropout
    (final val loss and accuracy on repeated data, all targets and content tokens only, means over
    seeds). The paper's entries probably stack on dropout, so both readings are shown."""
    repeated = table[table.epochs == table.epochs.max()]
    metrics = {"val_loss": "val loss", "val_accuracy": "Val Acc % (all targets)",
               "val_content_accuracy": "Val Acc % (content tokens)"}
    mean = repeated.groupby("regularizer")[list(metrics)].mean()
    rows = []
    for name, acc in zip(paper_table.regularizer, paper_table["C4 Val Acc"]):
        alone = sorted(n for n in mean.index if "+" not in n and (n == name or n.startswith(f"{name} ")))
        stacked = [n for n in mean.index if n.startswith(f"{dropout} + {name}")]
        row = {"regularizer": name, "paper: C4 Val Acc %": acc}
        for reading, found in (("alone", alone), ("on dropout", stacked)):
            for metric, label in metrics.items():
                if len(found):
                    value = mean.loc[found[0], metric]
                    row[f"ours {reading}: {label}"] = round(value, 3) if metric == "val_loss" else round(100 * value, 2)
        rows.append(row)
    return pd.DataFrame(rows).set_index("regularizer")
