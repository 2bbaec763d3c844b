"""Contrasts of cell means with t-intervals, equivalence tests and detectable effects.

A results table has one row per run; a *cell* is one design point (e.g. size x epochs) and its
seeds are replicates. `Cells` holds each cell's mean and the within-cell variance pooled over all
cells of the table. A contrast sum_i c_i mean_i then has standard error
sqrt(s^2 sum_i c_i^2 / n_i) with sum_i (n_i - 1) degrees of freedom; a smooth function of the
means (a relative change, a ratio) is linearised at the means (the delta method).
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05  # two-sided intervals are 95 %; one-sided (equivalence) tests are at 5 %
POWER = 0.80  # the detectable effect is the one a two-sided 5 % test finds with this power


@functools.lru_cache(maxsize=None)
def t_quantile(q: float, df: int) -> float:
    return float(stats.t.ppf(q, df))


class MissingCellError(KeyError):
    """A contrast names a cell that has no runs."""


@dataclass(frozen=True)
class Estimate:
    """A contrast's estimate, standard error, degrees of freedom and 95 % t-interval."""
    estimate: float
    se: float
    df: int

    @property
    def spread(self) -> bool:
        """False when no cell has two seeds: no interval can be given."""
        return self.df > 0

    def _t(self, q: float) -> float:
        return t_quantile(q, self.df) if self.spread else float("nan")

    @property
    def low(self) -> float:
        return self.estimate - self._t(1 - ALPHA / 2) * self.se

    @property
    def high(self) -> float:
        return self.estimate + self._t(1 - ALPHA / 2) * self.se

    @property
    def detectable(self) -> float:
        """Smallest true effect a two-sided 5 % test detects with 80 % power at this standard error."""
        return (self._t(1 - ALPHA / 2) + self._t(POWER)) * self.se

    def upper(self) -> float:
        """One-sided 95 % upper bound (the upper end of the 90 % interval)."""
        return self.estimate + self._t(1 - ALPHA) * self.se

    def lower(self) -> float:
        """One-sided 95 % lower bound."""
        return self.estimate - self._t(1 - ALPHA) * self.se

    def interval(self, digits: int = 3) -> str:
        return f"{self.estimate:+.{digits}f} (95 % CI {self.low:+.{digits}f} to {self.high:+.{digits}f})"


class Cells:
    """Cell means, seed counts and pooled within-cell variance of `metric`, cells keyed by `by`
    (a column name, or a list of them for tuple keys). Plain Python on purpose: the calibration
    feeds rules thousands of small tables."""

    def __init__(self, table: pd.DataFrame, by: list[str] | str, metric: str):
        self.by, self.metric = by, metric
        keys = table[by].tolist() if isinstance(by, str) else list(zip(*(table[c].tolist() for c in by)))
        groups: dict = {}
        for key, value in zip(keys, table[metric].to_numpy(float)):
            groups.setdefault(key, []).append(value)
        self.keys = list(groups)
        self.mean = {k: float(np.mean(v)) for k, v in groups.items()}
        self.n = {k: len(v) for k, v in groups.items()}
        self.df = sum(n - 1 for n in self.n.values())
        squares = sum(float(((np.asarray(v) - self.mean[k]) ** 2).sum()) for k, v in groups.items())
        self.variance = squares / self.df if self.df else float("nan")

    def __getitem__(self, cell: Hashable) -> float:
        self._check([cell])
        return self.mean[cell]

    def _check(self, cells) -> None:
        missing = [c for c in cells if c not in self.mean]
        if missing:
            raise MissingCellError(f"no runs for cell {missing[0]!r} ({self.by} of {self.metric})")

    def contrast(self, coefficients: Mapping[Hashable, float]) -> Estimate:
        """sum_i c_i mean_i with its standard error from the pooled variance."""
        self._check(coefficients)
        estimate = sum(c * self.mean[k] for k, c in coefficients.items())
        se = float(np.sqrt(self.variance * sum(c * c / self.n[k] for k, c in coefficients.items())))
        return Estimate(float(estimate), se, self.df)

    def delta(self, cells: list[Hashable], fn: Callable[..., float]) -> Estimate:
        """fn(mean of cells[0], mean of cells[1], ...) with a delta-method standard error."""
        self._check(cells)
        means = np.array([self.mean[c] for c in cells], float)
        gradient: dict = {}
        for i, cell in enumerate(cells):
            h = 1e-6 * max(abs(means[i]), 1.0)
            up, down = means.copy(), means.copy()
            up[i] += h
            down[i] -= h
            gradient[cell] = gradient.get(cell, 0.0) + (fn(*up) - fn(*down)) / (2 * h)
        linear = self.contrast(gradient)
        return Estimate(float(fn(*means)), linear.se, linear.df)


def difference(a: Hashable, b: Hashable) -> dict:
    """Coefficients of mean(a) - mean(b) (zero if a and b are the same cell)."""
    return weighted_sum([{a: 1.0}, {b: 1.0}], [1.0, -1.0])


def difference_of_differences(a1: Hashable, a0: Hashable, b1: Hashable, b0: Hashable) -> dict:
    """Coefficients of (mean(a1) - mean(a0)) - (mean(b1) - mean(b0))."""
    return weighted_sum([{a1: 1.0}, {a0: 1.0}, {b1: 1.0}, {b0: 1.0}], [1.0, -1.0, -1.0, 1.0])


def weighted_sum(parts: list[Mapping[Hashable, float]], weights: list[float]) -> dict:
    """A weighted sum of coefficient sets (e.g. an effect minus a fraction of a reference)."""
    out: dict = {}
    for part, w in zip(parts, weights):
        for cell, c in part.items():
            out[cell] = out.get(cell, 0.0) + w * c
    return out


def tost(minus_margin: Estimate, plus_margin: Estimate) -> float:
    """Two one-sided tests of equivalence: the p-value that the effect lies inside the margin,
    given the estimates of (effect - margin), which must be < 0, and (effect + margin), > 0."""
    if not minus_margin.spread:
        return float("nan")
    p_upper = stats.t.cdf(minus_margin.estimate / minus_margin.se, minus_margin.df) if minus_margin.se else float(minus_margin.estimate >= 0)
    p_lower = stats.t.sf(plus_margin.estimate / plus_margin.se, plus_margin.df) if plus_margin.se else float(plus_margin.estimate <= 0)
    return float(max(p_upper, p_lower))


def variance_outliers(table: pd.DataFrame, by: list[str], metric: str, alpha: float = 0.01) -> dict:
    """Cells (keyed by the `by` columns) whose seed variance of `metric` is an outlier among the
    cells', each with its sd: Cochran's C test at `alpha` (largest variance over the sum, against
    1 / (1 + (k-1) / F(1 - alpha/k; n-1, (n-1)(k-1))) with n the median seeds per cell), repeated
    without each cell it flags. One such cell would set the pooled variance of every contrast."""
    groups = table.groupby(by)[metric]
    variance = groups.var(ddof=1).dropna()
    df = int(groups.count().median()) - 1
    flagged = {}
    while len(variance) > 2 and df >= 1 and variance.sum() > 0:
        k = len(variance)
        critical = 1 / (1 + (k - 1) / stats.f.ppf(1 - alpha / k, df, df * (k - 1)))
        if variance.max() / variance.sum() <= critical:
            break
        worst = variance.idxmax()
        flagged[worst] = float(np.sqrt(variance[worst]))
        variance = variance.drop(worst)
    return flagged


def interaction_f_test(cells: Cells, rows: list, columns: list) -> tuple[float, float]:
    """F statistic and p-value of the row x column interaction in a two-way table of cell means
    (every cell with the same number of seeds), against the pooled within-cell variance."""
    keys = [(r, c) for r in rows for c in columns]
    cells._check(keys)
    means = np.array([[cells.mean[(r, c)] for c in columns] for r in rows], float)
    n = float(np.mean([cells.n[k] for k in keys]))
    residual = means - means.mean(1, keepdims=True) - means.mean(0, keepdims=True) + means.mean()
    df_interaction = (len(rows) - 1) * (len(columns) - 1)
    if not cells.df or not df_interaction:
        return float("nan"), float("nan")
    f = n * (residual ** 2).sum() / df_interaction / cells.variance
    return float(f), float(stats.f.sf(f, df_interaction, cells.df))


@functools.lru_cache(maxsize=None)
def _orderings(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))))


def permutation_p(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman correlation of x and y and its exact one-sided permutation p-value (every
    ordering of y); the smallest p-value possible is 1 / len(y)!."""
    rx, ry = stats.rankdata(x) - (len(x) + 1) / 2, stats.rankdata(y) - (len(y) + 1) / 2
    scale = np.sqrt((rx @ rx) * (ry @ ry))
    null = ry[_orderings(len(y))] @ rx / scale
    rho = float(rx @ ry / scale)
    return rho, float(np.mean(null >= rho - 1e-12))


def loglog_slope(x, y) -> tuple[float, Estimate]:
    """Least-squares slope of log y on log x as an Estimate (df = points - 2) and its intercept."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    slope, intercept = np.polyfit(lx, ly, 1)
    df = len(lx) - 2
    residual = ly - (slope * lx + intercept)
    se = float(np.sqrt(residual @ residual / df / ((lx - lx.mean()) ** 2).sum())) if df > 0 else float("nan")
    return float(intercept), Estimate(float(slope), se, max(df, 0))
