"""Rules for findings 3.5-3.11 (model, objective and regularizer variants), fixed before the runs
after PAPER.md sections 6.5-6.11, with the same noise rule as `lib.verdicts`: an effect counts only
beyond `NOISE_MULTIPLE` times the pooled seed spread. Metric: final validation loss on the
span-corruption probe (accuracy is reported beside it).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.paths import read_bench
from lib.verdicts import NOT, PARTLY, REPRODUCED, Verdict, n_seeds, seed_spread, significant

METRIC = "val_loss"


def degradation(table: pd.DataFrame, by: str, metric: str = METRIC) -> pd.DataFrame:
    """Per value of `by`: mean final metric on unique data (1 epoch), on repeated data (the most
    epochs) and the rise between them."""
    most = table.epochs.max()
    means = table.pivot_table(index=by, columns="epochs", values=metric, aggfunc="mean", sort=False)
    return pd.DataFrame({"unique": means[1], "repeated": means[most], "rise": means[most] - means[1]})


def params_not_flops(table: pd.DataFrame, proxy_experts: int, metric: str = METRIC) -> Verdict:
    """3.5. (a) FLOPs at fixed parameters: applying every layer twice does not reduce the rise from
    unique to repeated data beyond noise (a small gain at most); (b) parameters at fixed FLOPs:
    the many-expert MoE rises more than the 1-expert one, beyond noise."""
    spread = seed_spread(table, ["architecture", "epochs"], metric)
    rise = degradation(table, "architecture", metric)["rise"]
    flops_effect = rise["shared x2"] - rise["dense"]  # < 0: extra FLOPs protect
    params_effect = rise[f"MoE {proxy_experts}"] - rise["MoE 1"]  # > 0: extra parameters hurt
    a = not (flops_effect < 0 and significant(flops_effect, spread))
    b = params_effect > 0 and significant(params_effect, spread)
    verdict = REPRODUCED if a and b else (PARTLY if a or b else NOT)
    sentence = (
        f"Rise in final {metric} from unique to repeated data: "
        + ", ".join(f"{name} {value:+.3f}" for name, value in rise.items())
        + f" (seed spread {spread:.3f}). (a) Twice the FLOPs at the same parameters changes the rise by "
        f"{flops_effect:+.3f}: {'no protection beyond noise' if a else 'a clear protection'}; (b) "
        f"{proxy_experts} experts instead of 1 (same FLOPs, more parameters) change it by {params_effect:+.3f}: "
        f"{'more degradation beyond noise' if b else 'no clear increase'}.")
    return Verdict("3.5", verdict, sentence, metric, float(params_effect), spread, n_seeds(table),
                   {"a": a, "b": bool(b), "rise": rise.to_dict(), "flops_effect": float(flops_effect)})


def curve_shape(curves: pd.DataFrame, by: str, metric: str = METRIC) -> pd.DataFrame:
    """Per run: the tokens at its best evaluation and its final minus best metric; then mean per `by`."""
    rows = []
    for (name, seed), run in curves.groupby([by, "seed"]):
        best = run.loc[run[metric].idxmin()]
        rows.append({by: name, "seed": seed, "best_tokens": best.tokens,
                     "final_minus_best": run.sort_values("tokens")[metric].iloc[-1] - best[metric]})
    return pd.DataFrame(rows)


def seconds_per_run(table: pd.DataFrame, dense: str, moe: str) -> tuple[dict[str, float], str]:
    """Training seconds of one run of each architecture, and where they come from: the quiet-machine
    measurement of `python -m lib.bench --only moe_proxy` if there is one, else the runs' own
    times (which vary with whatever else the machine was doing)."""
    tokens = float(table.total_tokens.iloc[0])
    if measured := read_bench().get("moe_proxy"):
        dense_row, moe_row = measured
        return {dense: tokens / dense_row["tokens_per_s"], moe: tokens / moe_row["tokens_per_s"]}, "the benchmark"
    return table.groupby("architecture")["train_seconds"].mean().to_dict(), "the runs' own times"


def cheap_moe_predicts(table: pd.DataFrame, repeated_curves: pd.DataFrame, dense: str, moe: str,
                       metric: str = METRIC) -> Verdict:
    """3.6. On repeated data the MoE proxy's curve has the dense model's shape: its best point
    within +-25 % in tokens and its final-minus-best drop within noise; and it is cheaper (FLOPs
    per token, and training wall-clock on this machine)."""
    shape = curve_shape(repeated_curves, "architecture", metric)
    per = shape.groupby("architecture")[["best_tokens", "final_minus_best"]].mean()
    drop_spread = float(np.sqrt(shape.groupby("architecture")["final_minus_best"].var(ddof=1).mean()))
    peak_ratio = per.loc[moe, "best_tokens"] / per.loc[dense, "best_tokens"]
    drop_gap = per.loc[moe, "final_minus_best"] - per.loc[dense, "final_minus_best"]
    same_shape = 0.75 <= peak_ratio <= 1.25 and not significant(drop_gap, drop_spread)
    cost = table.groupby("architecture")[["flops_per_input_token", "params"]].mean()
    flops_ratio = cost.loc[moe, "flops_per_input_token"] / cost.loc[dense, "flops_per_input_token"]
    seconds, source = seconds_per_run(table, dense, moe)
    wall_ratio = seconds[moe] / seconds[dense]
    params_ratio = cost.loc[moe, "params"] / cost.loc[dense, "params"]
    cheaper = wall_ratio < 1
    verdict = REPRODUCED if same_shape and cheaper else (PARTLY if same_shape else NOT)
    sentence = (
        f"The {moe} proxy has {params_ratio:.2f}x the parameters of the {dense} model at {flops_ratio:.2f}x its "
        f"FLOPs per token and {wall_ratio:.2f}x its training wall-clock here (from {source}). On repeated "
        f"data its best "
        f"point comes at {peak_ratio:.2f}x the dense model's tokens and it then loses "
        f"{per.loc[moe, 'final_minus_best']:.3f} against {per.loc[dense, 'final_minus_best']:.3f} nats "
        f"(seed spread {drop_spread:.3f}): the curves {'match' if same_shape else 'do not match'} in shape"
        + ("" if cheaper else f"{', but' if same_shape else ', and'} the proxy is not faster on this CPU") + ".")
    return Verdict("3.6", verdict, sentence, metric, float(drop_gap), drop_spread, n_seeds(table),
                   {"peak_ratio": float(peak_ratio), "flops_ratio": float(flops_ratio),
                    "wall_ratio": float(wall_ratio), "params_ratio": float(params_ratio)})


def ul2_degrades_more(table: pd.DataFrame, metric: str = METRIC) -> Verdict:
    """3.7. UL2's rise from unique to repeated data exceeds span corruption's beyond noise."""
    spread = seed_spread(table, ["objective", "epochs"], metric)
    d = degradation(table, "objective", metric)
    effect = d.loc["ul2", "rise"] - d.loc["span", "rise"]
    more = effect > 0 and significant(effect, spread)
    less = effect < 0 and significant(effect, spread)
    verdict = REPRODUCED if more else NOT
    sentence = (
        f"On the common span-corruption probe, final {metric} rises from unique to repeated data by "
        f"{d.loc['span', 'rise']:+.3f} for span corruption and {d.loc['ul2', 'rise']:+.3f} for UL2 "
        f"(difference {effect:+.3f}, seed spread {spread:.3f}, {n_seeds(table)} seeds): UL2 degrades "
        + ("more, beyond noise." if more else "clearly less." if less else "about as much (within noise)."))
    return Verdict("3.7", verdict, sentence, metric, float(effect), spread, n_seeds(table), {"table": d.to_dict()})


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


def lower_is_better(metric: str) -> bool:
    return "loss" in metric


def dropout_helps_most(table: pd.DataFrame, dropout: str = "dropout 0.1", metric: str = METRIC) -> Verdict:
    """3.8. (a) dropout beats no regularizer beyond noise; (b) nothing stacked on dropout improves
    on it beyond noise; (c) no other regularizer alone beats dropout beyond noise."""
    repeated = table[table.epochs == table.epochs.max()]
    spread = seed_spread(repeated, ["regularizer"], metric)
    effects = regularizer_effects(table, metric)
    base = effects.loc[dropout, "gain"]
    stacked = effects[effects.index.str.startswith(f"{dropout} + ")]["gain"]
    alone = effects[~effects.index.str.contains("dropout") & (effects.index != "none")]["gain"]
    a = significant(base, spread) and base > 0
    better_stacked = [n for n, v in stacked.items() if v - base > 0 and significant(v - base, spread)]
    better_alone = [n for n, v in alone.items() if v - base > 0 and significant(v - base, spread)]
    b, c = not better_stacked, not better_alone
    verdict = NOT if not a else (REPRODUCED if b and c else PARTLY)
    sentence = (
        f"On repeated data, {dropout} {'lowers' if lower_is_better(metric) else 'raises'} the final {metric} by "
        f"{effects.loc[dropout, 'gain']:.3f} "
        f"({effects.loc[dropout, 'gap_recovered']:.0%} of the gap to unique data; seed spread {spread:.3f}). "
        + (f"Stacked on dropout, {', '.join(better_stacked)} improve(s) further. " if better_stacked else
           "Nothing stacked on dropout improves on it beyond noise. ")
        + (f"Alone, {', '.join(better_alone)} beat(s) dropout." if better_alone else
           "No other regularizer alone beats dropout beyond noise."))
    return Verdict("3.8", verdict, sentence, metric, float(effects.loc[dropout, "gain"]), spread,
                   n_seeds(table), {"a": bool(a), "b": b, "c": c, "effects": effects.to_dict()})


def late_dropout_matches(table: pd.DataFrame, curves: pd.DataFrame, starts: tuple[float, ...],
                         dropout: str = "dropout 0.1", metric: str = METRIC) -> Verdict:
    """3.9. Dropout switched on late ends within noise of (or better than) dropout from the start,
    and leads it before the switch (lower loss at the last evaluation before it)."""
    spread = seed_spread(table, ["regularizer"], metric)
    final = table.groupby("regularizer")[metric].mean()
    rows = []
    for start in starts:
        name = f"{dropout} from {start:.0%}"
        switch_tokens = start * curves.tokens.max()
        before = curves[(curves.tokens > 0) & (curves.tokens <= switch_tokens)]
        at = before[before.tokens == before.tokens.max()].groupby("regularizer")[metric].mean()
        rows.append({"late": name, "final_gap": final[name] - final[dropout],
                     "lead_before_switch": at[dropout] - at[name]})
    late = pd.DataFrame(rows).set_index("late")
    ends_level = ~((late.final_gap > 0) & late.final_gap.abs().gt(2 * spread))
    leads = late.lead_before_switch > 0
    verdict = REPRODUCED if (ends_level & leads).all() else (PARTLY if ends_level.any() else NOT)
    sentence = "; ".join(
        f"{name}: ends {row.final_gap:+.3f} against dropout from the start "
        f"({'within noise or better' if ends_level[name] else 'clearly worse'}), and is "
        f"{abs(row.lead_before_switch):.3f} {'ahead' if row.lead_before_switch > 0 else 'behind'} just before "
        f"the switch" for name, row in late.iterrows()) + f" (seed spread {spread:.3f})."
    return Verdict("3.9", verdict, sentence, metric, float(late.final_gap.max()), spread, n_seeds(table),
                   {"late": late.to_dict()})


def dropout_needs_tuning(table: pd.DataFrame, sizes: list[str], metric: str = METRIC) -> Verdict:
    """3.10. (a) the best dropout rate differs across sizes and/or (b) the largest size still
    declines late (final minus best beyond noise) at its best rate. Not reproduced if one rate is
    best everywhere and removes all late decline."""
    repeated = table[table.epochs == table.epochs.max()]
    spread = seed_spread(repeated, ["size", "dropout"], metric)
    mean = repeated.groupby(["size", "dropout"])[[metric, f"best_{metric}"]].mean()
    best_rate = {s: float(mean.loc[s][metric].idxmin()) for s in sizes}
    gain = {s: float(mean.loc[(s, 0.0), metric] - mean.loc[(s, best_rate[s]), metric]) for s in sizes}
    decline = {s: float(mean.loc[(s, best_rate[s]), metric] - mean.loc[(s, best_rate[s]), f"best_{metric}"])
               for s in sizes}
    a = len(set(best_rate.values())) > 1
    b = significant(decline[sizes[-1]], spread)
    verdict = REPRODUCED if a or b else NOT
    sentence = (
        "Best dropout rate on repeated data: " + ", ".join(f"{s} {best_rate[s]:g} (gain {gain[s]:+.3f})" for s in sizes)
        + f"; at that rate the final loss sits {', '.join(f'{s} {decline[s]:.3f}' for s in sizes)} above the "
        f"curve's best (seed spread {spread:.3f}). (a) The best rate {'shifts' if a else 'does not shift'} with "
        f"size; (b) {sizes[-1]} {'still declines late' if b else 'shows no late decline beyond noise'}.")
    return Verdict("3.10", verdict, sentence, metric, decline[sizes[-1]], spread, n_seeds(table),
                   {"best_rate": best_rate, "gain": gain, "decline": decline})


def spearman(x: pd.Series, y: pd.Series) -> float:
    return float(x.rank().corr(y.rank()))


def sweep_cost(table: pd.DataFrame, dense: str, moe: str) -> tuple[pd.DataFrame, str]:
    """Per architecture: runs, training FLOPs and training seconds of the sweep (seconds per run from
    `seconds_per_run`), and where the seconds come from."""
    seconds, source = seconds_per_run(table, dense, moe)
    cost = table.groupby("architecture").agg(runs=("key", "size"), train_flops=("train_flops", "sum"))
    cost["train_seconds"] = cost.runs * pd.Series(seconds)
    return cost, source


def moe_transfer(table: pd.DataFrame, dense: str, moe: str, metric: str = METRIC) -> Verdict:
    """3.11. The dropout rate that is best for the MoE proxy is best for the dense model (or the
    rates' rankings agree, Spearman >= 0.8), and the MoE sweep costs less than the dense sweep."""
    by = table.groupby(["architecture", "dropout"])
    mean = by[metric].mean()
    spread = seed_spread(table, ["architecture", "dropout"], metric)
    best = {arch: float(mean.loc[arch].idxmin()) for arch in (dense, moe)}
    rho = spearman(mean.loc[dense], mean.loc[moe])
    agree = best[dense] == best[moe] or rho >= 0.8
    cost, source = sweep_cost(table, dense, moe)
    cost = cost[["train_flops", "train_seconds"]]
    sweep = cost.loc[moe] / cost.loc[dense]
    with_confirmation = (cost.loc[moe] + cost.loc[dense] / mean.loc[dense].size) / cost.loc[dense]
    cheaper = with_confirmation["train_seconds"] < 1
    verdict = REPRODUCED if agree and cheaper else (PARTLY if agree else NOT)
    sentence = (
        f"Best dropout rate: {best[moe]:g} on the {moe} proxy and {best[dense]:g} on the {dense} model "
        f"(Spearman over the rates {rho:+.2f}). The MoE sweep costs {sweep['train_flops']:.2f}x the dense "
        f"sweep's FLOPs and {sweep['train_seconds']:.2f}x its wall-clock here (from {source}); with one "
        f"confirming dense run, {with_confirmation['train_seconds']:.2f}x (paper: 0.48x in dollars).")
    return Verdict("3.11", verdict, sentence, metric, rho, spread, n_seeds(table),
                   {"best": best, "spearman": rho, "sweep_cost": sweep.to_dict(),
                    "with_confirmation": with_confirmation.to_dict()})


def beside_table_3(table: pd.DataFrame, paper_table: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 3 with our probe loss and accuracy beside it; our repeated cell stands in
    the row of the paper's most-repeated one (2^8 epochs)."""
    ours = table.pivot_table(index=["objective", "epochs"], values=["val_loss", "val_accuracy"], aggfunc="mean")
    ours = ours.rename(index={table.epochs.max(): paper_table.epochs.max()}, level="epochs")
    return paper_table.set_index(["objective", "epochs"]).join(ours.rename(
        columns={"val_loss": "ours: probe val loss", "val_accuracy": "ours: probe Val Acc"}))


def beside_table_4(table: pd.DataFrame, paper_table: pd.DataFrame, dropout: str = "dropout 0.1") -> pd.DataFrame:
    """The paper's Table 4 with ours beside it: each regularizer alone and stacked on dropout
    (final val loss and accuracy on repeated data, means over seeds). The paper's entries are
    probably stacked on dropout (PAPER.md 3.8), so both readings are shown."""
    repeated = table[table.epochs == table.epochs.max()]
    mean = repeated.groupby("regularizer")[["val_loss", "val_accuracy"]].mean()
    rows = []
    for name, acc in zip(paper_table.regularizer, paper_table["C4 Val Acc"]):
        alone = sorted(n for n in mean.index if "+" not in n and (n == name or n.startswith(f"{name} ")))
        stacked = [n for n in mean.index if n.startswith(f"{dropout} + {name}")]
        row = {"regularizer": name, "paper: C4 Val Acc %": acc}
        for reading, names in (("alone", alone), ("on dropout", stacked)):
            if len(names):
                row[f"ours {reading}: val loss"] = round(mean.loc[names[0], "val_loss"], 3)
                row[f"ours {reading}: Val Acc %"] = round(100 * mean.loc[names[0], "val_accuracy"], 2)
        rows.append(row)
    return pd.DataFrame(rows).set_index("regularizer")
