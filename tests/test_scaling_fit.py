"""The data-constrained scaling-law fit on synthetic runs with a known R* (no training)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib import scaling_fit as sf
from lib.paper import MUENNIGHOFF_R_STAR as R_STAR

T = 2**21
EPOCHS = (1, 4, 16, 64, 256)


def synthetic_curves(r_star: float, seeds=(0, 1, 2), noise: float = 0.004, E: float = 4.0, B: float = 40.0,
                     beta: float = 0.3) -> pd.DataFrame:
    """Curves like `runs.curves` of the repetition grid, with losses from the law plus noise."""
    truth = sf.Fit(E, B, beta, r_star, 0.0, 0, True)
    rng = np.random.default_rng(int(r_star * 10))
    rows = []
    for seed in seeds:
        for epochs in EPOCHS:
            unique = T // epochs
            for tokens in [0, *(T // 2**k for k in (6, 5, 4)), *(T * i // 8 for i in range(1, 9))]:
                loss = truth.loss(unique, max(tokens, 1)) + noise * rng.standard_normal()
                rows.append({"key": f"{epochs}-{seed}", "size": "S", "unique_tokens": unique, "epochs": epochs,
                             "seed": seed, "tokens": tokens, "val_loss": loss})
    return pd.DataFrame(rows)


def test_effective_data_limits():
    assert sf.effective_data(100, 50, R_STAR) == 50  # less than one epoch: all tokens are unique
    assert sf.effective_data(100, 100, R_STAR) == 100
    assert sf.effective_data(100, 200, 1e9) == pytest.approx(200)  # R* -> inf: repeats count fully
    assert sf.effective_data(100, 1e6, R_STAR) == pytest.approx(100 * (1 + R_STAR))  # the ceiling U (1 + R*)
    assert sf.effective_data(100, 200, R_STAR) < 200


@pytest.mark.parametrize("r_star", [R_STAR, 5.0])
def test_fit_recovers_r_star(r_star):
    points = sf.fit_points(synthetic_curves(r_star))
    fit = sf.fit_sizes(points)["S"]
    assert fit.identifiable, fit.note
    assert fit.r_star == pytest.approx(r_star, rel=0.15)
    assert fit.rmse < 0.01
    predicted = sf.with_predictions(points, {"S": fit})
    assert np.allclose(predicted.predicted, predicted.val_loss, atol=0.02)


@pytest.mark.parametrize("r_star", [R_STAR, 5.0])
def test_bootstrap_interval_contains_truth(r_star):
    points = sf.fit_points(synthetic_curves(r_star))
    replicates = sf.bootstrap(points, n=60, seed=1)
    assert len(replicates) == 60 and replicates.identifiable.all()
    row = sf.interval(replicates, level=0.95).iloc[0]
    assert row.r_star_low <= r_star <= row.r_star_high
    assert row.r_star_high / row.r_star_low < 2  # informative, not the whole search range


def test_points_stop_at_the_lowest_loss():
    curves = synthetic_curves(5.0, seeds=(0,))
    run = curves.key == "256-0"
    curves.loc[run & (curves.tokens > T // 8), "val_loss"] += 1.0  # an overfitting tail
    points = sf.fit_points(curves)
    tail = points[(points.key == "256-0") & (points.tokens > T // 8)]
    assert not tail.used.any()
    assert not points[points.tokens < T // 16].used.any()  # warm-up points are left out


def test_nearly_free_epochs():
    fit = sf.Fit(4.0, 40.0, 0.3, R_STAR, 0.0, 0, True)
    free = sf.nearly_free_epochs(fit, T, tolerance=0.01)
    assert 1 < free < 256
    assert fit.loss(T / free, T) / fit.loss(T, T) - 1 == pytest.approx(0.01, abs=1e-3)
    assert sf.nearly_free_epochs(sf.Fit(4.0, 40.0, 0.3, 1.0, 0.0, 0, True), T) < free  # smaller R*: fewer
    assert np.isnan(sf.nearly_free_epochs(sf.Fit(*[np.nan] * 5, 0, False), T))


def test_unidentifiable_designs_do_not_crash():
    unique_only = sf.fit([T] * 6, np.geomspace(T / 32, T, 6), np.linspace(6, 5, 6))
    assert not unique_only.identifiable and "repeated" in unique_only.note
    too_few = sf.fit([T, T / 4], [T, T], [5.0, 5.1])
    assert not too_few.identifiable and np.isnan(too_few.r_star)
    flat = sf.fit_sizes(sf.fit_points(synthetic_curves(5.0).assign(val_loss=5.0)))["S"]
    assert not flat.identifiable


def test_observed_nearly_free():
    table = pd.DataFrame({"size": "S", "unique_tokens": [T // e for e in EPOCHS], "epochs": EPOCHS,
                          "val_loss": [5.0, 5.02, 5.2, 5.5, 6.0], "best_val_loss": [5.0, 5.02, 5.2, 5.4, 5.6]})
    excess = sf.observed_excess(table, tolerance=0.01)
    assert excess.excess.iloc[1] == pytest.approx(0.004)
    row = sf.observed_nearly_free(excess).iloc[0]
    assert row.nearly_free_epochs == 4 and row.first_costly_epochs == 16
    assert row.its_excess == pytest.approx(0.04)
