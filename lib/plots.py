"""The house style on seaborn: figures only, never computation."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
import pandas as pd
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook", palette="viridis")

LABELS = {"val_loss": "validation loss (nats)", "val_accuracy": "masked-token accuracy",
          "val_content_loss": "validation loss on content tokens (nats)",
          "val_content_accuracy": "accuracy on content tokens", "tokens": "training tokens (encoder inputs)",
          "test_loss": "fine-tuned title loss (nats per token)", "exact_match": "title exact match (%)",
          "f1": "title F1 (%)"}


def curves(curve_table: pd.DataFrame, metric: str = "val_loss", hue: str = "epochs", col: str | None = "size",
           reference: pd.DataFrame | None = None, title: str | None = None, row: str | None = None):
    """Validation curves over training tokens (mean over seeds, band = seed spread), one panel per
    value of `col` (and of `row`, if given: one figure, so a page gets one numbered figure).

    `reference`: rows with `col` and `unigram_content_loss`, drawn as a dashed line per panel.
    """
    data = curve_table[curve_table.tokens > 0]
    norm = LogNorm() if hue == "epochs" else None  # 1 ... 256 epochs spread evenly in colour
    grid = sns.relplot(data=data, x="tokens", y=metric, hue=hue, col=col, row=row, kind="line", errorbar=("sd", 1),
                       palette="viridis", hue_norm=norm, height=3.4, aspect=1.15, facet_kws={"sharey": True}, marker="o",
                       markersize=3)
    grid.set(xscale="log")
    grid.set_axis_labels(LABELS["tokens"], LABELS.get(metric, metric))
    if reference is not None:
        for name, ax in grid.axes_dict.items() if col else [(None, grid.ax)]:
            rows = reference if name is None else reference[reference[col] == name]
            if len(rows):
                ax.axhline(rows["unigram_content_loss"].mean(), ls="--", color="grey", lw=1)
                ax.text(ax.get_xlim()[0], rows["unigram_content_loss"].mean(), " unigram", va="bottom",
                        color="grey", fontsize=8)
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid


def final_vs_epochs(table: pd.DataFrame, metric: str = "val_loss", hue: str = "size", title: str | None = None,
                    references: pd.Series | None = None, reference_label: str = "from scratch"):
    """Final metric against the number of epochs (log scale), one line per `hue`; `references`
    (one level per hue value) are drawn as dashed lines in the same colours."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    sns.lineplot(data=table, x="epochs", y=metric, hue=hue, marker="o", errorbar=("sd", 1), ax=ax,
                 palette="viridis")
    if references is not None:
        colours = dict(zip(table[hue].unique(), sns.color_palette("viridis", table[hue].nunique())))
        for name, level in references.items():
            ax.axhline(level, ls="--", lw=1, color=colours[name])
            ax.text(1, level, f" {name} {reference_label}", color=colours[name], fontsize=8, va="bottom")
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1))
    ax.set(xscale="log", xlabel="epochs over the unique subset (T fixed)", ylabel=LABELS.get(metric, metric))
    ax.set_xticks(sorted(table.epochs.unique()), [str(e) for e in sorted(table.epochs.unique())])
    if title:
        ax.set_title(title)
    return fig


def compute_curves(curve_table: pd.DataFrame, metric: str = "val_loss"):
    """Metric against training FLOPs spent so far, one line per size (log-log)."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    sns.lineplot(data=curve_table, x="flops", y=metric, hue="size", errorbar=("sd", 1), ax=ax, palette="viridis")
    ax.set(xscale="log", xlabel="training FLOPs", ylabel=LABELS.get(metric, metric))
    ax.set_title("Validation loss against compute, by model size")
    return fig


def tokens_needed(cross: pd.DataFrame, verdict):
    """Tokens each size needs before the next size overtakes it, against parameters (log-log)."""
    found = cross.dropna(subset=["tokens_needed"])
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(found.params, found.tokens_needed, color="C0", zorder=3)
    x = np.geomspace(found.params.min(), found.params.max(), 20)
    anchor = found.tokens_needed.iloc[0] / found.params.iloc[0] ** verdict.effect
    ax.plot(x, anchor * x ** verdict.effect, color="C0", lw=1, label=f"fit: slope {verdict.effect:.2f}")
    ax.plot(x, found.tokens_needed.iloc[0] * x / found.params.iloc[0], "--", color="grey", lw=1,
            label="slope 1 (linear)")
    ax.set(xscale="log", yscale="log", xlabel="parameters", ylabel="tokens before next size wins")
    ax.legend()
    return fig


def fixed_repetition(fixed: pd.DataFrame, fresh: pd.DataFrame, metric: str = "val_loss"):
    """Final metric against T for repeated runs (fixed epochs) and fresh-data runs of the same T."""
    both = pd.concat([fixed.assign(data=lambda t: t.epochs.astype(str) + " epochs of U = T/" +
                                   (t.total_tokens // t.unique_tokens).astype(str)),
                      fresh.assign(data="1 epoch (fresh data)")])
    fig, ax = plt.subplots(figsize=(5.4, 3.6))
    sns.lineplot(data=both, x="total_tokens", y=metric, hue="data", marker="o", errorbar=("sd", 1), ax=ax)
    ax.set(xscale="log", xlabel="total training tokens T", ylabel=LABELS.get(metric, metric))
    ax.set_title("Fixed repetition: the gap to fresh data as U grows")
    return fig


def bars(table: pd.DataFrame, x: str, metric: str = "val_loss", hue: str | None = None, title: str | None = None,
         reference: float | None = None, reference_label: str = "unique data, no regularizer", panel: str | None = None):
    """Final metric per category (mean over seeds, whiskers = seed sd), horizontal bars; the
    x-range starts near the data so differences stay visible. `panel`: one panel per value of this
    column, stacked in one figure."""
    panels = list(table.groupby(panel, sort=False)) if panel else [(None, table)]
    height = 0.45 * table[x].nunique() * (table[hue].nunique() if hue else 1) + 1.2
    fig, axes = plt.subplots(len(panels), 1, figsize=(6.4, height * len(panels)), squeeze=False)
    for ax, (name, rows) in zip(axes[:, 0], panels):
        _bar_panel(ax, rows, x, metric, hue, reference, reference_label)
        ax.set_title(f"{panel} {name}" if panel else title)
    if panel:
        fig.tight_layout()
        if title:
            fig.suptitle(title, y=1.02)
    return fig


def _bar_panel(ax, table: pd.DataFrame, x: str, metric: str, hue: str | None, reference: float | None,
               reference_label: str):
    sns.barplot(data=table, y=x, x=metric, hue=hue, errorbar=("sd", 1), ax=ax, palette="viridis", orient="h")
    low, high = table[metric].min(), table[metric].max()
    if reference is not None:
        ax.axvline(reference, ls="--", color="grey", lw=1)
        ax.text(reference, ax.get_ylim()[1], f" {reference_label}", color="grey", fontsize=8, va="top")
        low = min(low, reference)
    ax.set_xlim(low - 0.15 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
    ax.set(xlabel=LABELS.get(metric, metric), ylabel="")


def lines(table: pd.DataFrame, x: str, metric: str = "val_loss", hue: str | None = None, title: str | None = None,
          xlabel: str | None = None):
    """Final metric against a numeric setting (e.g. the dropout rate), one line per `hue`."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    sns.lineplot(data=table, x=x, y=metric, hue=hue, marker="o", errorbar=("sd", 1), ax=ax, palette="viridis")
    ax.set(xlabel=xlabel or x, ylabel=LABELS.get(metric, metric))
    ax.set_xticks(sorted(table[x].unique()))
    if title:
        ax.set_title(title)
    return fig


def first_token_curves(curve_table: pd.DataFrame, references: pd.DataFrame, title: str | None = None):
    """A span's first-token loss (needs the encoder) and later-token loss over training, per size,
    with the unigram (dashed) and bigram (dotted) references on the same targets."""
    data = curve_table[curve_table.tokens > 0].melt(
        id_vars=["size", "tokens", "seed"], value_vars=["val_first_loss", "val_later_loss"],
        var_name="target", value_name="loss").replace({"val_first_loss": "first token", "val_later_loss": "later tokens"})
    grid = sns.relplot(data=data, x="tokens", y="loss", hue="size", col="target", kind="line", errorbar=("sd", 1),
                       palette="viridis", height=3.4, aspect=1.2, marker="o", markersize=3)
    grid.set(xscale="log")
    grid.set_axis_labels(LABELS["tokens"], "validation loss on content tokens (nats)")
    for target, ax in grid.axes_dict.items():
        part = "first" if target == "first token" else "later"
        for name, style in (("unigram", "--"), ("bigram", ":")):
            level = references[f"{name}_{part}_loss"].mean()
            ax.axhline(level, ls=style, color="grey", lw=1)
            ax.text(ax.get_xlim()[0], level, f" {name}", va="bottom", color="grey", fontsize=8)
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid


VERDICT_COLOURS = {"reproduced": "#2e9d55", "partly reproduced": "#3a7dc2", "not reproduced": "#d1453b",
                   "inconclusive": "#e3a21a", "untestable at this scale": "#8d8d8d"}


PAPER_SIGNS = {"+": "above 0", "0": "about 0", "<=": "0 or below"}


def scorecard_units(table: pd.DataFrame):
    """Each finding's effect in units of its noise threshold (rows of `finding`, `units`, `verdict`,
    `paper`: a key of PAPER_SIGNS), coloured by verdict; the band |x| < 1 is within noise, and the paper's
    expectation stands at the right."""
    rows = table.iloc[::-1].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(6.4, 0.38 * len(rows) + 1.3))
    ax.axvspan(-1, 1, color="0.92", zorder=0)
    ax.axvline(0, color="0.6", lw=1)
    bound = max(2.0, np.nanmax(np.abs(rows.units)) * 1.1) if rows.units.notna().any() else 2.0
    for y, row in rows.iterrows():
        colour = VERDICT_COLOURS[row.verdict]
        if np.isfinite(row.units):
            ax.plot([0, row.units], [y, y], color=colour, lw=2)
            ax.scatter(row.units, y, color=colour, s=45, zorder=3)
        else:
            ax.text(0, y, " no estimate", color=colour, va="center", fontsize=8)
        ax.text(1.01, y, PAPER_SIGNS[row.paper], transform=ax.get_yaxis_transform(),
                va="center", fontsize=8, color="0.3")
    ax.text(1.01, len(rows) - 0.4, "paper", transform=ax.get_yaxis_transform(), fontsize=8, weight="bold")
    ax.set_yticks(range(len(rows)), rows.finding)
    ax.set(xlim=(-bound, bound), ylim=(-0.7, len(rows) - 0.3), ylabel="finding",
           xlabel="our effect / half-width of its 95 % interval (grey band: within noise)")
    ax.grid(axis="y", visible=False)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=lab) for lab, c in VERDICT_COLOURS.items()
               if lab in set(rows.verdict)]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8, frameon=False)
    return fig
