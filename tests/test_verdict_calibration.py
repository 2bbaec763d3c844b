"""Every verdict rule on synthetic tables of known truth (`lib.calibration`; pure pandas, fixed
seeds, DRAWS tables per case): without the claimed effect it says "reproduced" at most 5 % of the
time (plus Monte-Carlo tolerance), and with a 10-sd effect and 3 seeds at least 80 % of the time."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from lib import calibration, stats, verdicts
from lib import variant_verdicts as vv

DRAWS = 1000
FALSE_POSITIVE = 0.05 + 3 * np.sqrt(0.05 * 0.95 / DRAWS)  # nominal level plus 3 Monte-Carlo standard errors
POWER = 0.80


@pytest.mark.parametrize("seeds", [2, 3])
@pytest.mark.parametrize("rule", list(calibration.RULES))
def test_no_effect_is_rarely_reproduced(rule, seeds):
    assert calibration.rate(rule, "null", 0, seeds, DRAWS) <= FALSE_POSITIVE


@pytest.mark.parametrize("rule", calibration.ABSENCE)
def test_absence_with_nothing_measurable_is_rarely_reproduced(rule):
    assert calibration.rate(rule, "nothing", 0, 2, DRAWS) <= FALSE_POSITIVE


@pytest.mark.parametrize("rule", list(calibration.RULES))
def test_a_10_sd_effect_with_3_seeds_is_found(rule):
    assert calibration.rate(rule, "planted", 10, 3, DRAWS) >= POWER


def test_a_3_sd_effect_is_found_less_often_than_a_10_sd_one():
    """Power grows with the effect (3.7: one difference of differences, 2 seeds)."""
    assert calibration.rate("3.7", "planted", 3, 2, DRAWS) < calibration.rate("3.7", "planted", 10, 2, DRAWS)


def test_3_11_with_three_rates_cannot_reproduce_and_says_why():
    """Three rates allow 3! orderings: the permutation null cannot reach 5 %."""
    verdict = calibration.transfer_3_11("planted", 10, 3, np.random.default_rng(0), rates=(0.0, 0.1, 0.3))
    assert verdict.verdict == verdicts.INCONCLUSIVE and "at least 5 rates" in verdict.reason


def test_one_seed_per_cell_is_inconclusive_with_its_reason():
    for rule in calibration.RULES:
        if rule != "3.1":  # its interval comes from the crossings, not from seeds
            verdict = calibration.RULES[rule]("planted", 10, 1, np.random.default_rng(0))
            assert verdict.verdict == verdicts.INCONCLUSIVE and verdict.reason == verdicts.NO_SPREAD, rule


def test_a_missing_cell_is_named():
    rng = np.random.default_rng(0)
    table = calibration._runs({("span", 1): 0, ("span", 64): 20, ("ul2", 1): 0}, 2, rng, ["objective", "epochs"])
    with pytest.raises(stats.MissingCellError, match="'ul2', 64"):
        vv.ul2_degrades_more(table)


def test_contrast_standard_error_uses_the_contrasts_own_coefficients():
    table = pd.DataFrame({"cell": ["a", "a", "b", "b", "c", "c"], "seed": [0, 1] * 3,
                          "x": [1.0, 3.0, 2.0, 4.0, 0.0, 2.0]})  # every cell variance 2
    cells = stats.Cells(table, "cell", "x")
    one = cells.contrast(stats.difference("a", "b"))
    two = cells.contrast(stats.difference_of_differences("a", "b", "b", "c"))  # a - 2b + c
    assert (one.estimate, one.df) == (-1.0, 3)
    assert one.se == pytest.approx(np.sqrt(2 * (1 / 2 + 1 / 2)))
    assert two.se == pytest.approx(np.sqrt(2 * (1 + 4 + 1) / 2))  # b counted twice: coefficient 2


def test_ladder_failure_makes_the_size_claim_untestable():
    rng = np.random.default_rng(0)
    cells = {(s, e): 40.0 * (e == 256) + 30.0 * (e == 64) for s in calibration.SIZES for e in (1, 64, 256)}
    table = calibration._runs(cells, 3, rng, ["size", "epochs"])
    table["best_val_loss"] = table.val_loss
    verdict = verdicts.repetition_degrades(table, calibration.SIZES)
    assert verdict.verdict == verdicts.UNTESTABLE and "ladder" in verdict.reason


def test_a_finding_at_two_sizes_is_partly_reproduced_where_one_size_is():
    """`across_sizes`: every size's verdict and intervals are kept; the headline is the largest size's."""
    rng = np.random.default_rng(0)
    small, large = calibration.RULES["3.5"]("planted", 10, 3, rng), calibration.RULES["3.5"]("null", 0, 3, rng)
    combined = vv.across_sizes("3.5", {"A": small, "B": large})
    assert small.verdict == verdicts.REPRODUCED and large.verdict != verdicts.REPRODUCED
    assert combined.verdict == verdicts.PARTLY and combined.estimate is large.estimate
    assert "**A:** reproduced" in combined.sentence and f"**B:** {large.verdict}" in combined.sentence
    assert len(verdicts.interval_table(combined)) == len(verdicts.interval_table(small)) * 2
    partly = dataclasses.replace(large, verdict=verdicts.PARTLY)
    assert vv.across_sizes("3.5", {"A": partly, "B": partly}).verdict == verdicts.PARTLY
    assert vv.across_sizes("3.5", {"A": partly, "B": large}).verdict == verdicts.PARTLY


def test_best_rates_per_size_with_benefit_and_late_decline():
    """3.10's per-size table: each size's lowest-loss rate, its gain over no dropout, and the
    final-minus-best of the curve at that rate."""
    rows = []
    for size, best, decline in (("A", 0.1, 0.0), ("B", 0.3, 0.05)):
        for rate in (0.0, 0.1, 0.3):
            for seed, noise in enumerate((-0.001, 0.001)):
                loss = 5.0 + (0.0 if rate == best else 0.2) + noise
                rows.append({"size": size, "dropout": rate, "epochs": 64, "seed": seed, "val_loss": loss,
                             "best_val_loss": loss - (decline if rate == best else 0.0)})
    table = vv.best_rates(pd.DataFrame(rows), ["A", "B"])
    assert table["best rate"].to_dict() == {"A": 0.1, "B": 0.3}
    assert table.loc["A", "benefit over no dropout"].startswith("+0.200")
    assert table.loc["B", "final minus best at best rate"].startswith("+0.050")


def test_a_cell_with_an_outlying_seed_spread_is_left_out_of_the_dropout_sweep():
    """3.10: a cell whose seeds disagree far more than any other cell's (as when a run's evaluation
    loss blows up) is left out and named, so its spread does not widen every other interval."""
    rng = np.random.default_rng(0)
    rows = []
    for size in ("A", "B", "C"):
        for rate in (0.0, 0.1, 0.3, 0.5):
            for seed in range(2):
                loss = 5.0 + (0.0 if rate == 0.1 else 0.2) + rng.normal(0, 0.002)
                if (size, rate) == ("A", 0.5):
                    loss = (7.0, 12.0)[seed]
                rows.append({"size": size, "dropout": rate, "epochs": 64, "seed": seed, "val_loss": loss,
                             "best_val_loss": min(loss, 5.2)})
    table = pd.DataFrame(rows)
    assert list(stats.variance_outliers(table, ["size", "dropout"], "val_loss")) == [("A", 0.5)]
    best = vv.best_rates(table, ["A", "B", "C"])
    assert best["best rate"].to_dict() == {"A": 0.1, "B": 0.1, "C": 0.1}
    assert best.loc["A", "benefit over no dropout"] == "+0.199 (95 % CI +0.196 to +0.202)"
    verdict = vv.dropout_needs_tuning(table, ["A", "B", "C"], "")
    assert "Left out: A at 0.5 (sd 3.54)" in verdict.sentence
    assert verdict.estimate.high - verdict.estimate.low < 0.05
    baseline_out = table.assign(val_loss=table.val_loss.where((table["size"] != "B") | (table.dropout != 0.0),
                                                              table.seed * 3.0))
    assert vv.best_rates(baseline_out, ["A", "B", "C"]).loc["B", "benefit over no dropout"] == "no dropout left out"
    homogeneous = table[(table["size"] != "A") | (table.dropout != 0.5)]
    assert stats.variance_outliers(homogeneous, ["size", "dropout"], "val_loss") == {}


def test_moe_transfer_leaves_out_a_cell_with_an_outlying_seed_spread():
    """3.11: the blown-up cell is named and its rate leaves both rankings, so the others keep their noise."""
    rng = np.random.default_rng(1)
    rows = []
    for arch in ("dense", "MoE"):
        for rate, level in ((0.0, 0.3), (0.1, 0.0), (0.2, 0.1), (0.3, 0.2), (0.5, 0.4)):
            for seed in range(2):
                loss = 5.0 + level + rng.normal(0, 0.002) if (arch, rate) != ("MoE", 0.5) else (5.0, 6.6)[seed]
                rows.append({"architecture": arch, "dropout": rate, "epochs": 64, "seed": seed, "val_loss": loss,
                             "best_val_loss": loss, "train_flops": 1.0, "train_seconds": 1.0, "size": "A",
                             "total_tokens": 1, "profile": "smoke"})
    verdict = vv.moe_transfer(pd.DataFrame(rows), "dense", "MoE", seconds=({"dense": 1.0, "MoE": 0.1}, "a test"))
    assert "Left out: MoE at 0.5" in verdict.sentence and verdict.details["interior"]["dense"]
    assert verdict.details["spearman"] == 1.0
