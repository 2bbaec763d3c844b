"""How often each verdict rule says "reproduced" on synthetic results tables of known truth.

Every table has the columns its rule reads, cell means built from a planted effect and Gaussian
seed noise of `SD` nats per run. Three scenarios per rule:

- `null`: the claimed effect is absent (for a claim of absence: the effect sits at the margin);
- `nothing`: nothing is measurable at all (every cell equal), for claims of absence;
- `planted`: the claim holds, its effect `d` cell standard deviations large.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from lib import downstream, verdicts
from lib import variant_verdicts as vv
from lib.verdicts import MARGIN, REPRODUCED, Verdict

SD = 0.02  # seed-to-seed standard deviation of a final loss, nats
BASE = 5.0  # a final loss, nats
SIZES = ["A", "B", "C"]


def _runs(cells: dict, seeds: int, rng: np.random.Generator, by: list[str], metric: str = "val_loss") -> pd.DataFrame:
    """One row per cell and seed: the cell's mean (in SD units above BASE) plus noise."""
    keys = [key if isinstance(key, tuple) else (key,) for key in cells for _ in range(seeds)]
    columns = {name: np.array([k[i] for k in keys], dtype=object) for i, name in enumerate(by)}
    means = np.repeat(np.array(list(cells.values()), float), seeds)
    return pd.DataFrame({**columns, "seed": np.tile(np.arange(seeds), len(cells)),
                         metric: BASE + SD * (means + rng.normal(0, 1, len(means)))})


def tokens_3_1(scenario: str, d: float, seeds: int, rng) -> Verdict:
    """Crossovers of five sizes, each 2x the last: slope 1 with an adjacent step of d noise sd (null: slope 0)."""
    params = 5e5 * 2.0 ** np.arange(4)
    slope = 0.0 if scenario == "null" else 1.0
    sigma = np.log(2) / (d if scenario == "planted" else 10)
    tokens = np.exp(slope * np.log(params) + rng.normal(0, sigma / np.sqrt(seeds), len(params)))
    cross = pd.DataFrame({"params": params, "tokens_needed": tokens, "never_overtaken": False,
                          "bigger_always_better": False})
    return verdicts.tokens_grow_with_params(cross, seeds)


def repetition_3_2(scenario: str, d: float, seeds: int, rng) -> Verdict:
    """Sizes A < B < C (each 10 sd better at 1 epoch), rising 40 sd by 256 epochs (half by 64);
    planted: C rises d more than A (B half of that); the curves end 20 sd above their best."""
    extra = d if scenario == "planted" else 0.0
    cells = {(s, e): -10 * i + (40 + extra * i / 2) * {1: 0, 64: 0.5, 256: 1}[e]
             for i, s in enumerate(SIZES) for e in (1, 64, 256)}
    table = _runs(cells, seeds, rng, ["size", "epochs"])
    table["best_val_loss"] = table.val_loss - SD * np.where(table.epochs == 256, 20, 0)
    return verdicts.repetition_degrades(table, SIZES)


def larger_3_3(scenario: str, d: float, seeds: int, rng) -> Verdict:
    """Gaps of 16-epoch runs to fresh runs at T = 16 U for three U, and 64 vs 256 epochs at the
    largest T; planted: the gap shrinks by d from the smallest to the largest U, and 256 epochs end d worse."""
    extra = d if scenario == "planted" else 0.0
    ts = [2**16, 2**18, 2**20]
    cells = {**{(t, 16): 20 - extra * k / 2 for k, t in enumerate(ts)}, **{(t, 1): 0.0 for t in ts},
             (ts[-1], 64): 30.0, (ts[-1], 256): 30 + extra}
    table = _runs(cells, seeds, rng, ["total_tokens", "epochs"])
    return verdicts.larger_dataset_mitigates(*verdicts.split_larger_dataset(table))


def quality_3_4(scenario: str, d: float, seeds: int, rng) -> Verdict:
    """web rises R, wikipedia as much (planted, R = d), or (null) only (1 - MARGIN) R with R = 20; nothing: R = 0."""
    rise = {"planted": d, "null": 20.0, "nothing": 0.0}[scenario]
    clean = rise * (1 - MARGIN) if scenario == "null" else rise
    cells = {("web", 1): 0.0, ("web", 256): rise, ("wikipedia", 1): 0.0, ("wikipedia", 256): clean}
    return verdicts.quality_does_not_help(_runs(cells, seeds, rng, ["corpus", "epochs"]))


def params_3_5(scenario: str, d: float, seeds: int, rng) -> Verdict:
    """Two backbones, each with rises of 2d (planted) or 20 (null): planted, shared x2 as dense and
    MoE 16 d above MoE 2; null, no MoE effect and shared x2 at the margin below dense; nothing: no
    rise anywhere. Judged as the book does, per backbone and combined."""
    r = {"planted": 2 * d, "null": 20.0, "nothing": 0.0}[scenario]
    rises = {"dense": r, "shared x2": r * (1 - MARGIN) if scenario == "null" else r, "MoE 2": r,
             "MoE 16": r + (d if scenario == "planted" else 0)}
    cells = {(size, a, e): (rise if e == 64 else 0.0) for size in SIZES[:2] for a, rise in rises.items() for e in (1, 64)}
    return vv.params_not_flops_by_size(_runs(cells, seeds, rng, ["size", "architecture", "epochs"]), 16, 2)


def moe_3_6(scenario: str, d: float, seeds: int, rng) -> Verdict:
    """Two pairs (A with 16 experts against dense B, B against dense C), each with curves that bottom
    out at the same evaluation and end `drop` above it: the dense model's drop is 2d (planted) or 20
    (null), the proxy's the same (planted) or 1 + MARGIN times it (null); nothing: 0. The proxy trains
    in half the dense model's seconds. Judged as the book does, per pair and combined."""
    drop = {"planted": 2 * d, "null": 20.0, "nothing": 0.0}[scenario]
    drops = {"dense": drop, "MoE 16": drop * (1 + MARGIN) if scenario == "null" else drop}
    tokens = np.arange(1, 9) * 1000
    shape = np.minimum(0, tokens - 4000) / 1000  # falls to the 4th evaluation, then flat
    pairs = {SIZES[0]: (SIZES[1], 16), SIZES[1]: (SIZES[2], 16)}
    rows, table = [], []
    for backbone, (dense, _) in pairs.items():
        for arch, size, seconds, flops in (("dense", dense, 2.0, 1.0), ("MoE 16", backbone, 1.0, 0.4)):
            table.append((arch, size, seconds, flops))
            for seed in range(seeds):
                rise = SD * (drops[arch] + rng.normal(0, 1)) * (tokens == tokens[-1])
                rows += [(arch, size, seed, t, BASE - 0.5 * s + r) for t, s, r in zip(tokens, shape, rise)]
    curves = pd.DataFrame(rows, columns=["architecture", "size", "seed", "tokens", "val_loss"])
    table = pd.DataFrame(table, columns=["architecture", "size", "train_seconds", "flops_per_input_token"]).assign(
        params=1.0, total_tokens=8000, seed=0, profile="synthetic")
    return vv.cheap_moe_by_size(table, curves, pairs)


def ul2_3_7(scenario: str, d: float, seeds: int, rng) -> Verdict:
    """Both objectives rise 20; planted: UL2 d more."""
    extra = d if scenario == "planted" else 0.0
    cells = {("span", 1): 0.0, ("span", 64): 20.0, ("ul2", 1): 0.0, ("ul2", 64): 20 + extra}
    return vv.ul2_degrades_more(_runs(cells, seeds, rng, ["objective", "epochs"]))


def dropout_3_8(scenario: str, d: float, seeds: int, rng) -> Verdict:
    """Repeated data 2g above unique; dropout gains g (d planted, 10 null); planted: the others
    alone gain nothing and stacked adds nothing; null: every regularizer alone gains as much as
    dropout; nothing: no effect at all."""
    g = {"planted": d, "null": 10.0, "nothing": 0.0}[scenario]
    alone = g if scenario == "null" else 0.0
    cells = {("none", 64): 2 * g, ("dropout 0.1", 64): g, ("dropout 0.1 + droppath 0.1", 64): g,
             ("droppath 0.1", 64): 2 * g - alone, ("label smoothing 0.1", 64): 2 * g - alone, ("none", 1): 0.0}
    return vv.dropout_helps_most(_runs(cells, seeds, rng, ["regularizer", "epochs"]))


def late_3_9(scenario: str, d: float, seeds: int, rng) -> Verdict:
    """Dropout gains g (d planted, 20 null, 0 nothing); late switches end level (planted) or
    MARGIN g worse (null) and lead by d (planted) just before their switch."""
    g = {"planted": d, "null": 20.0, "nothing": 0.0}[scenario]
    late = MARGIN * g if scenario == "null" else 0.0
    names = ["dropout 0.1 from 25%", "dropout 0.1 from 50%"]
    table = _runs({"none": g, "dropout 0.1": 0.0, **{n: late for n in names}}, seeds, rng, ["regularizer"])
    lead = d if scenario == "planted" else 0.0
    cells = {(n, t): (-lead if n in names else 0.0) for n in ["dropout 0.1", *names] for t in (1000, 2000, 4000)}
    curves = _runs(cells, seeds, rng, ["regularizer", "tokens"])
    return vv.late_dropout_matches(table, curves, (0.25, 0.5))


def tuning_3_10(scenario: str, d: float, seeds: int, rng) -> Verdict:
    """Sizes x rates 0, 0.1, 0.3 on repeated data; planted: A is best at 0.1 and C at 0.3 by d,
    and C ends d above its best; null: dropout does nothing and curves end at their best."""
    planted = scenario == "planted"
    best = {"A": 0.1, "B": 0.1, "C": 0.3}
    cells = {(s, r): (0.0 if not planted or r == best[s] else d) for s in SIZES for r in (0.0, 0.1, 0.3)}
    table = _runs(cells, seeds, rng, ["size", "dropout"]).assign(epochs=64)
    table["best_val_loss"] = table.val_loss - SD * d * (planted & (table["size"] == "C"))
    return vv.dropout_needs_tuning(table, SIZES, "")


def transfer_3_11(scenario: str, d: float, seeds: int, rng, rates=(0.0, 0.1, 0.2, 0.3, 0.5)) -> Verdict:
    """Both models share a loss curve over the rates with an interior optimum, steps of d
    (planted); null: dropout does nothing."""
    shape = [3, 1, 0, 2, 4][:len(rates)] if len(rates) == 5 else [1, 0, 2]
    cells = {(a, r): (d * k if scenario == "planted" else 0.0) for a in ("dense", "MoE 16") for r, k in zip(rates, shape)}
    table = _runs(cells, seeds, rng, ["architecture", "dropout"])
    table = table.assign(key=range(len(table)), train_flops=np.where(table.architecture == "dense", 2.0, 1.0),
                         total_tokens=1000)
    return vv.moe_transfer(table, "dense", "MoE 16", seconds=({"dense": 2.0, "MoE 16": 1.0}, "synthetic"))


def _probe(by: str, rises: dict[str, float], seeds: int, rng) -> pd.DataFrame:
    """Probe rows: title loss rising by `rises` from 1 to 256 epochs, pre-training 10 sd better than scratch."""
    table = _runs({(g, e): (r if e == 256 else 0.0) for g, r in rises.items() for e in (1, 256)}, seeds, rng,
                  [by, "epochs"], "test_loss")
    return table.assign(scratch_test_loss=table.test_loss + 10 * SD + rng.normal(0, SD, len(table)),
                        exact_match=0.0, f1=0.0)


def probe_3_2(scenario: str, d: float, seeds: int, rng) -> Verdict:
    rise = d if scenario == "planted" else 0.0
    return downstream.repetition_hurts_downstream(_probe("size", dict.fromkeys(SIZES, rise), seeds, rng), SIZES)


def probe_3_4(scenario: str, d: float, seeds: int, rng) -> Verdict:
    rise = d if scenario == "planted" else 0.0
    return downstream.quality_does_not_protect_downstream(_probe("corpus", {"web": 20.0, "wikipedia": rise}, seeds, rng))


def probe_3_7(scenario: str, d: float, seeds: int, rng) -> Verdict:
    extra = d if scenario == "planted" else 0.0
    return downstream.ul2_hurts_more_downstream(_probe("objective", {"span": 20.0, "ul2": 20.0 + extra}, seeds, rng))


RULES: dict[str, Callable[..., Verdict]] = {
    "3.1": tokens_3_1, "3.2": repetition_3_2, "3.3": larger_3_3, "3.4": quality_3_4, "3.5": params_3_5,
    "3.6": moe_3_6, "3.7": ul2_3_7, "3.8": dropout_3_8, "3.9": late_3_9, "3.10": tuning_3_10, "3.11": transfer_3_11,
    "3.2 downstream": probe_3_2, "3.4 downstream": probe_3_4, "3.7 downstream": probe_3_7,
}
ABSENCE = ("3.4", "3.5", "3.6", "3.8", "3.9")  # rules with a claim of absence: the `nothing` scenario applies


def rate(rule: str, scenario: str, d: float, seeds: int, draws: int, seed: int = 0) -> float:
    """The fraction of `draws` synthetic tables on which `rule` says reproduced."""
    rng = np.random.default_rng(seed)
    return float(np.mean([RULES[rule](scenario, d, seeds, rng).verdict == REPRODUCED for _ in range(draws)]))


def table(draws: int, seed: int = 0) -> pd.DataFrame:
    """Per rule: how often it says reproduced without the claimed effect (2 and 3 seeds; and, for
    claims of absence, with nothing measurable) and with it planted at 3 and 10 cell sd."""
    rows = []
    for rule in RULES:
        row = {"rule": rule}
        for seeds in (2, 3):
            row[f"false positives, {seeds} seeds"] = rate(rule, "null", 0, seeds, draws, seed)
            if rule in ABSENCE:
                row[f"nothing measurable, {seeds} seeds"] = rate(rule, "nothing", 0, seeds, draws, seed)
        for d in (3, 10):
            for seeds in (2, 3):
                row[f"power at {d} sd, {seeds} seeds"] = rate(rule, "planted", d, seeds, draws, seed)
        rows.append(row)
    return pd.DataFrame(rows).set_index("rule")
