"""Muennighoff et al.'s data-constrained scaling law (their 2023 paper), fitted to our runs.

    L(U, D) = E + B / D'^beta,   D' = min(D, U) + U R* (1 - exp(-R / R*)),   R = max(D / U - 1, 0)

for a model that has trained on D tokens drawn from U unique ones (R = repeats). Per model size,
E, B, beta and R* are free (E, B >= 0). The fit is a variable projection: for each (R*, beta) on
a log grid, E and B follow by linear least squares; the grid is zoomed around the best cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm

from lib.paper import MUENNIGHOFF_R_STAR

NEARLY_FREE = 0.01  # "nearly free": within 1 % of the loss on T unique tokens (the reproduction's rule)
R_STAR_BOUNDS = (0.05, 2000.0)
BETA_BOUNDS = (0.01, 3.0)
CELL = ["size", "unique_tokens", "total_tokens"]  # one run design; its seeds are replicates
MIN_POINTS = 5  # four free parameters


def effective_data(unique, tokens, r_star) -> np.ndarray:
    """D': the unique tokens seen, plus the repeated ones discounted with decay constant R*."""
    unique, tokens = np.asarray(unique, float), np.asarray(tokens, float)
    repeats = np.maximum(tokens / unique - 1, 0)
    return np.minimum(tokens, unique) + unique * r_star * -np.expm1(-repeats / r_star)


@dataclass(frozen=True)
class Fit:
    E: float
    B: float
    beta: float
    r_star: float
    rmse: float
    n_points: int
    identifiable: bool
    note: str = ""

    def loss(self, unique, tokens) -> np.ndarray:
        return self.E + self.B * effective_data(unique, tokens, self.r_star) ** -self.beta


def _linear(x: np.ndarray, y: np.ndarray):
    """Least squares y = E + B x with E, B >= 0 along the last axis of x; returns E, B, SSE.
    The best feasible one of: the free solution, E = 0, and B = 0."""
    xm, ym = x.mean(-1, keepdims=True), y.mean()
    sxx = ((x - xm) ** 2).sum(-1)
    b_free = ((x - xm) * (y - ym)).sum(-1) / np.where(sxx > 0, sxx, np.inf)
    b_origin = np.maximum((x * y).sum(-1) / (x * x).sum(-1), 0)
    candidates = [(ym - b_free * xm[..., 0], b_free), (np.zeros_like(b_origin), b_origin),
                  (np.full_like(b_free, ym), np.zeros_like(b_free))]
    sse = np.stack([np.where((E >= 0) & (B >= 0), ((y - E[..., None] - B[..., None] * x) ** 2).sum(-1), np.inf)
                    for E, B in candidates])
    pick = np.argmin(sse, axis=0)
    E, B = (np.choose(pick, [c[k] for c in candidates]) for k in (0, 1))
    return E, B, np.choose(pick, sse)


def _design_problem(unique: np.ndarray, tokens: np.ndarray) -> str:
    repeated = tokens > unique
    if len(unique) < MIN_POINTS:
        return f"only {len(unique)} points for 4 parameters"
    if not repeated.any() or repeated.all():
        return "needs both repeated and unrepeated points"
    if len(np.unique(tokens[~repeated])) < 2:
        return "needs unrepeated points at two or more token counts"
    return ""


def fit(unique, tokens, loss, rounds: int = 5, grid: int = 32) -> Fit:
    """Least-squares fit of E, B, beta, R* to losses at (U, D) points. `identifiable` is False,
    with a note, when the design cannot pin R* down or the best R* or beta lies on a bound."""
    unique, tokens, loss = (np.asarray(a, float) for a in (unique, tokens, loss))
    problem = _design_problem(unique, tokens)
    if len(loss) < MIN_POINTS:
        return Fit(*[float("nan")] * 5, len(loss), False, problem)
    lo, hi = np.log([R_STAR_BOUNDS[0], BETA_BOUNDS[0]]), np.log([R_STAR_BOUNDS[1], BETA_BOUNDS[1]])
    for _ in range(rounds):
        log_r, log_b = np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid)
        dp = np.stack([effective_data(unique, tokens, r) for r in np.exp(log_r)])  # (R*, points)
        E, B, sse = _linear(dp[:, None, :] ** -np.exp(log_b)[None, :, None], loss)  # (R*, beta)
        i, j = np.unravel_index(np.argmin(sse), sse.shape)
        best, step = np.array([log_r[i], log_b[j]]), (hi - lo) / (grid - 1)
        lo, hi = np.maximum(best - 2 * step, lo), np.minimum(best + 2 * step, hi)
    r_star, beta = np.exp(best)
    on_bound = [name for name, v, (a, b) in (("R*", r_star, R_STAR_BOUNDS), ("beta", beta, BETA_BOUNDS))
                if not a * 1.01 < v < b / 1.01]
    if not problem and on_bound:
        problem = f"{' and '.join(on_bound)} at the edge of the search range"
    if not problem and B[i, j] <= 0:
        problem = "the loss does not fall with data"
    return Fit(float(E[i, j]), float(B[i, j]), float(beta), float(r_star), float(np.sqrt(sse[i, j] / len(loss))),
               len(loss), not problem, problem)


def fit_points(curves: pd.DataFrame, min_fraction: float = 1 / 16) -> pd.DataFrame:
    """Every evaluation of every run (`runs.curves`) as a point (U, D = tokens so far, loss).
    `used` marks the fitted ones: D >= min_fraction x the run's T (past warm-up and the first
    rapid drop) and D at or before the run's lowest loss, since the law cannot rise."""
    table = curves[curves.tokens > 0].assign(total_tokens=lambda t: t.unique_tokens * t.epochs)
    best = table.loc[table.groupby("key").val_loss.idxmin()].set_index("key").tokens
    table["used"] = (table.tokens >= min_fraction * table.total_tokens) & (table.tokens <= table.key.map(best))
    return table.reset_index(drop=True)


def fit_sizes(points: pd.DataFrame) -> dict[str, Fit]:
    """One fit per model size, on its used points (each seed's run gives separate points)."""
    return {size: fit(u.unique_tokens, u.tokens, u.val_loss)
            for size, g in points.groupby("size", sort=False) for u in [g[g.used]]}


def sensitivity(curves: pd.DataFrame, fractions=(1 / 32, 1 / 16, 1 / 8, 1 / 4)) -> pd.DataFrame:
    """Fitted R* per size (rows) when points are fitted from a later start (columns: from T/n)."""
    return pd.DataFrame({f"from T/{round(1 / fraction)}": {size: f.r_star if f.identifiable else np.nan
                                                          for size, f in fit_sizes(fit_points(curves, fraction)).items()}
                         for fraction in fractions})


def fits_table(fits: dict[str, Fit]) -> pd.DataFrame:
    return pd.DataFrame([{"size": s, **vars(f)} for s, f in fits.items()])


def with_predictions(points: pd.DataFrame, fits: dict[str, Fit]) -> pd.DataFrame:
    """Seed means of `points` per (size, U, T, D), with each identifiable size's fitted loss."""
    mean = (points.groupby([*CELL, "tokens", "epochs", "used"], sort=False).val_loss.mean().reset_index()
            .assign(epochs_so_far=lambda t: t.tokens / t.unique_tokens, predicted=np.nan))
    for size, f in fits.items():
        rows = mean["size"] == size
        if f.identifiable:
            mean.loc[rows, "predicted"] = f.loss(mean.unique_tokens[rows], mean.tokens[rows])
    return mean


def bootstrap(points: pd.DataFrame, n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Each size's fit redone on `n` resamples: in every cell (size, U, T) its runs (one per seed)
    are drawn with replacement. One row per size and replicate."""
    rng = np.random.default_rng(seed)
    used = points[points.used]
    rows = []
    for size, group in used.groupby("size", sort=False):
        arrays = {key: g[["unique_tokens", "tokens", "val_loss"]].to_numpy(float) for key, g in group.groupby("key")}
        cells = group.groupby(CELL)["key"].unique()
        for replicate in range(n):
            sample = np.concatenate([arrays[k] for keys in cells for k in rng.choice(keys, len(keys))])
            f = fit(*sample.T)
            rows.append({"size": size, "replicate": replicate, "r_star": f.r_star, "beta": f.beta,
                         "identifiable": f.identifiable})
    return pd.DataFrame(rows, columns=["size", "replicate", "r_star", "beta", "identifiable"])


def interval(replicates: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Percentile interval of R* per size over its identifiable replicates."""
    share = replicates.groupby("size", sort=False).identifiable.mean().rename("identifiable_share")
    ok = replicates[replicates.identifiable].groupby("size", sort=False).r_star
    low, high = (ok.quantile(q).rename(name) for q, name in (((1 - level) / 2, "r_star_low"),
                                                              ((1 + level) / 2, "r_star_high")))
    return pd.concat([share, low, high], axis=1).rename_axis("size").reset_index()


def nearly_free_epochs(f: Fit, total_tokens: int, tolerance: float = NEARLY_FREE) -> float:
    """The most epochs (U = T / epochs) whose fitted loss at T stays within `tolerance` of the loss
    on T unique tokens; inf if every count does (up to 1e5), NaN if the fit is not identifiable."""
    if not f.identifiable:
        return float("nan")
    epochs = np.geomspace(1, 1e5, 4001)
    excess = f.loss(total_tokens / epochs, total_tokens) / f.loss(total_tokens, total_tokens) - 1
    free = epochs[excess <= tolerance]
    return float("inf") if free[-1] == epochs[-1] else float(free[-1])


def observed_excess(table: pd.DataFrame, tolerance: float = NEARLY_FREE) -> pd.DataFrame:
    """Final results: per size, T and epochs, the seed-mean final (`excess`) and best (`best_excess`)
    loss relative to the 1-epoch run of the same T; nearly free if the final one is within `tolerance`."""
    metrics = ["val_loss", "best_val_loss"]
    mean = (table.assign(total_tokens=table.unique_tokens * table.epochs)
            .groupby(["size", "total_tokens", "epochs"], sort=False)[metrics].mean().reset_index())
    unique = mean[mean.epochs == 1].set_index(["size", "total_tokens"]).val_loss.rename("unique_loss")
    mean = mean.join(unique, on=["size", "total_tokens"]).dropna(subset=["unique_loss"])
    mean["excess"] = mean.val_loss / mean.unique_loss - 1
    mean["best_excess"] = mean.best_val_loss / mean.unique_loss - 1
    mean["nearly_free"] = mean.excess <= tolerance
    return mean.sort_values(["size", "total_tokens", "epochs"]).reset_index(drop=True)


def observed_nearly_free(excess: pd.DataFrame) -> pd.DataFrame:
    """Per size and T: the most epochs of the grid whose loss is nearly free, counting up from 1
    epoch until the first count that is not, and that next count."""
    rows = []
    for (size, total), g in excess.groupby(["size", "total_tokens"], sort=False):
        g = g.sort_values("epochs")
        costly = g[~g.nearly_free]
        free = g[g.epochs < costly.epochs.min()] if len(costly) else g
        rows.append({"size": size, "total_tokens": total, "nearly_free_epochs": free.epochs.max(),
                     "first_costly_epochs": costly.epochs.min() if len(costly) else np.nan,
                     "its_excess": costly.excess.iloc[0] if len(costly) else np.nan})
    return pd.DataFrame(rows)


def summary(fits: dict[str, Fit], intervals: pd.DataFrame, excess: pd.DataFrame, total_tokens: int,
            tolerance: float = NEARLY_FREE) -> pd.DataFrame:
    """Per size: R* with its interval, and the nearly free epochs at T from the fit and the data."""
    data = observed_nearly_free(excess[excess.total_tokens == total_tokens]).drop(columns="total_tokens")
    table = fits_table(fits)[["size", "r_star", "identifiable", "note"]].merge(intervals, on="size", how="left")
    table["nearly_free_fit"] = [nearly_free_epochs(fits[s], total_tokens, tolerance) for s in table["size"]]
    return table.merge(data, on="size", how="left")


# --- figures -----------------------------------------------------------------------------------

def _size_sentence(row) -> str:
    if not row.identifiable:
        return f"- **{row['size']}**: fit not identifiable ({row.note})."
    ratio = row.r_star / MUENNIGHOFF_R_STAR
    free_fit = "every count" if np.isinf(row.nearly_free_fit) else f"{row.nearly_free_fit:.1f}"
    data = (f"the data: {row.nearly_free_epochs:g} epochs within 1 %, {row.first_costly_epochs:g} epochs "
            f"{row.its_excess:+.1%}" if pd.notna(row.first_costly_epochs) else
            f"the data: every tested count within 1 % (up to {row.nearly_free_epochs:g})")
    return (f"- **{row['size']}**: R* = {row.r_star:.3g} (90 % interval {row.r_star_low:.3g}–{row.r_star_high:.3g}), "
            f"{ratio:.2g} times Muennighoff et al.'s {MUENNIGHOFF_R_STAR:.1f}; nearly free epochs at T: fit {free_fit}, {data}.")


def conclusions(result: pd.DataFrame, excess: pd.DataFrame, total_tokens: int,
                tolerance: float = NEARLY_FREE) -> str:
    """The chapter's conclusions (Markdown): one line per size from `summary`, then the overall reading."""
    lines = [_size_sentence(row) for _, row in result.iterrows()]
    ok = result[result.identifiable]
    unique_loss = excess[(excess.epochs == 1) & (excess.total_tokens == total_tokens)].val_loss
    if not len(ok):
        return "\n".join(lines) + ("\n\n**Overall.** No size has an identifiable fit at this profile: the design "
                                   "cannot separate R* from the other parameters (see the notes above).")
    below = ok[ok.r_star_high < MUENNIGHOFF_R_STAR]["size"].tolist()
    overall = (
        f"**Overall.** {len(below)} of {len(ok)} identifiable sizes have an R* interval entirely below {MUENNIGHOFF_R_STAR:.1f}"
        + (f" ({', '.join(below)})" if below else "") + "; "
        + f"R* is {'smallest' if len(ok) > 1 else 'fitted'} for {ok.loc[ok.r_star.idxmin(), 'size']}. "
        + f"The fitted nearly-free range spans {ok.nearly_free_fit.min():.1f}–{ok.nearly_free_fit.max():.1f} epochs "
        + f"at T = {total_tokens:,} tokens, against about 4 in Muennighoff et al. 1 % of our unique-data loss "
        + f"is {tolerance * unique_loss.min():.3f}–{tolerance * unique_loss.max():.3f} nats.")
    return "\n".join(lines) + "\n\n" + overall


def plot_fit(predicted: pd.DataFrame, fits: dict[str, Fit]):
    """Per size: seed-mean loss against tokens trained, one colour per U; filled markers were
    fitted, hollow ones were not; lines are the fitted law."""
    sizes = list(dict.fromkeys(predicted["size"]))
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.6), sharey=True, squeeze=False)
    norm = LogNorm(predicted.unique_tokens.min(), predicted.unique_tokens.max() * 1.01)
    cmap = plt.get_cmap("viridis")
    for ax, size in zip(axes[0], sizes):
        data = predicted[predicted["size"] == size]
        for (u, total), g in data.groupby(["unique_tokens", "total_tokens"]):
            colour = cmap(norm(u))
            for used, marker_face in ((True, colour), (False, "none")):
                part = g[g.used == used]
                ax.scatter(part.tokens, part.val_loss, s=18, facecolors=marker_face, edgecolors=colour)
            f = fits[size]
            if f.identifiable:
                d = np.geomspace(g.tokens.min(), g.tokens.max(), 60)
                ax.plot(d, f.loss(u, d), color=colour, lw=1)
        title = f"{size}: R* = {fits[size].r_star:.3g}" if fits[size].identifiable else f"{size}: fit not identifiable"
        ax.set(xscale="log", xlabel="tokens trained D", title=title)
    axes[0][0].set_ylabel("validation loss (nats)")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(), label="unique tokens U")
    return fig


def plot_predicted_vs_observed(predicted: pd.DataFrame):
    """Observed seed-mean loss against the fitted one, coloured by epochs so far."""
    data = predicted.dropna(subset=["predicted"]).assign(fitted=lambda t: t.used.map({True: "fitted", False: "left out"}))
    fig, ax = plt.subplots(figsize=(5, 4))
    if data.empty:
        ax.text(0.5, 0.5, "no identifiable fit", ha="center", transform=ax.transAxes)
        return fig
    sns.scatterplot(data=data, x="predicted", y="val_loss", hue="epochs_so_far", hue_norm=LogNorm(), palette="viridis",
                    style="fitted", style_order=["fitted", "left out"], ax=ax, s=28)
    lims = [data[["predicted", "val_loss"]].min().min(), data[["predicted", "val_loss"]].max().max()]
    ax.plot(lims, lims, color="grey", lw=1, ls="--")
    ax.set(xlabel="fitted loss (nats)", ylabel="observed loss (nats)")
    ax.legend(fontsize=8, title_fontsize=8)
    return fig


def plot_r_star(fits: dict[str, Fit], intervals: pd.DataFrame):
    """Fitted R* per size with its bootstrap interval, beside Muennighoff et al.'s value."""
    table = fits_table(fits).merge(intervals, on="size", how="left")
    table = table[table.identifiable]
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    ax.errorbar(table["size"], table.r_star, yerr=[table.r_star - table.r_star_low, table.r_star_high - table.r_star],
                fmt="o", capsize=4, color="C0", label="ours (bootstrap interval)")
    ax.axhline(MUENNIGHOFF_R_STAR, color="grey", ls="--", lw=1, label=f"Muennighoff et al. ({MUENNIGHOFF_R_STAR:.1f})")
    ax.set(yscale="log", xlabel="model size", ylabel="R* (repeats)")
    low, high = ax.get_ylim()
    ticks = [t for t in (1, 2, 5, 10, MUENNIGHOFF_R_STAR, 20, 50, 100, 200, 500, 1000) if low <= t <= high]
    ax.set_yticks(ticks, [f"{t:.3g}" for t in ticks])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


def plot_excess(fits: dict[str, Fit], excess: pd.DataFrame, total_tokens: int, tolerance: float = NEARLY_FREE):
    """Loss at fixed T relative to unique data, against epochs: the fitted law (lines), the final
    (filled) and best (hollow) results at that T; the band is `tolerance` (nearly free). The y-axis
    is linear up to 5 %, logarithmic above."""
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    epochs = np.geomspace(1, max(excess.epochs.max(), 2), 100)
    for k, (size, f) in enumerate(fits.items()):
        colour = f"C{k}"
        if f.identifiable:
            ax.plot(epochs, f.loss(total_tokens / epochs, total_tokens) / f.loss(total_tokens, total_tokens) - 1,
                    color=colour, lw=1)
        points = excess[(excess["size"] == size) & (excess.total_tokens == total_tokens)]
        ax.scatter(points.epochs, points.excess, color=colour, label=f"{size} final", zorder=3)
        ax.scatter(points.epochs, points.best_excess, facecolors="none", edgecolors=colour, label=f"{size} best", zorder=3)
    ax.axhspan(-tolerance, tolerance, color="grey", alpha=0.2, lw=0)
    ax.set_yscale("symlog", linthresh=0.05)
    ax.set(xscale="log", xlabel=f"epochs over U = T / epochs (T = {total_tokens:,})", ylabel="loss relative to 1 epoch")
    ax.set_yticks([0, tolerance, 0.05, 0.1, 0.2, 0.5])
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(fontsize=7, ncol=2)
    return fig
