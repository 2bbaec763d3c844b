"""The data path of the interactive explorer: every cached run as a tidy table, filtered per selection.

Runs are described by `lib.describe` (architecture, regularizers) from their configs; fields added
after the first runs take their defaults, so old results and new ones share one table.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from lib import describe as describe_run
from lib import paper, runs
from lib.config import RunConfig

ALL = "all"
OBJECTIVES = {"span": "span corruption", "ul2": "UL2"}
COLUMNS = ["run", "key", "profile", "corpus", "size", "params", "unique_tokens", "epochs", "total_tokens",
           "objective", "regularizer", "variant", "seed", "lr", "label"]
DROPDOWNS = ("corpus", "size", "objective", "variant", "regularizer", "lr", "unique_tokens", "epochs")
FILTERS = ("profile", *DROPDOWNS)
MULTI = ("unique_tokens", "epochs")  # dropdowns that also offer 'all'
C4_LIKE, WIKIPEDIA_LIKE = ("web", "c4"), ("wikipedia", "wikipedia-hub")  # our corpus for the paper's


def describe(key: str, result: dict) -> dict:
    """The explorer's descriptive columns for one cached result, read from its config dict."""
    config, data = result["config"], result["config"]["data"]
    cfg = RunConfig.from_dict(config)
    objective = cfg.data.objective
    return {"key": key, "profile": config.get("profile", "custom"), "corpus": data["corpus"],
            "size": config["model"]["name"], "params": result["meta"].get("params"),
            "unique_tokens": data["unique_tokens"], "epochs": data["epochs"],
            "total_tokens": data["unique_tokens"] * data["epochs"], "objective": OBJECTIVES.get(objective, objective),
            "regularizer": describe_run.regularizer(cfg), "variant": describe_run.architecture(cfg), "seed": config["seed"],
            "lr": config["optim"]["lr"], "label": config.get("label", "")}


def load() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) of every cached result: one row per run with its final metrics, and one row
    per evaluation; both carry the descriptive columns, and `run` numbers the runs."""
    rows, points = [], []
    for i, (key, result) in enumerate(runs.cached_results()):
        base = {"run": i, **describe(key, result)}
        rows.append({**base, **{k: v for k, v in result["final"].items() if isinstance(v, (int, float))}})
        points += [{**base, **point} for point in result["curve"]]
    return (pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*COLUMNS, "val_loss", "val_accuracy"]),
            pd.DataFrame(points) if points else pd.DataFrame(columns=[*COLUMNS, "tokens", "val_loss"]))


def options(table: pd.DataFrame, column: str) -> list:
    """The values a dropdown offers for `column`, sorted; 'all' first for unique tokens and epochs."""
    values = sorted(table[column].dropna().unique().tolist())
    return [ALL, *values] if column in MULTI else values


def cascade(table: pd.DataFrame, selection: dict) -> tuple[dict, dict]:
    """Each dropdown's options given the choices before it (in `DROPDOWNS` order), and the selection
    made consistent: a choice that is not available becomes the most common value (or 'all')."""
    offered, chosen, rows = {}, {}, table
    for column in DROPDOWNS:
        offered[column] = options(rows, column)
        value = selection.get(column)
        if value not in offered[column]:
            value = ALL if column in MULTI else (rows[column].mode().tolist()[0] if len(rows) else None)
        chosen[column] = value
        rows = filter_runs(rows, **{column: value})
    return offered, chosen


def subset_label(unique_tokens: int, epochs: int) -> str:
    """'U = 2^17, 16 epochs' (U as a power of two when it is one)."""
    u = int(unique_tokens)
    size = f"2^{u.bit_length() - 1}" if u & (u - 1) == 0 else f"{u:,}"
    return f"U = {size}, {epochs} epoch{'s' if epochs != 1 else ''}"


def filter_runs(table: pd.DataFrame, **selection) -> pd.DataFrame:
    """Rows of `table` matching every given column value; 'all' or None matches everything."""
    unknown = set(selection) - set(FILTERS)
    if unknown:
        raise ValueError(f"unknown filter(s) {sorted(unknown)}; choose from {FILTERS}")
    mask = pd.Series(True, index=table.index)
    for column, value in selection.items():
        if value not in (None, ALL):
            mask &= table[column] == value
    return table[mask]


def paper_number(selection: dict) -> pd.DataFrame | None:
    """The paper's rows matching a selection of a dense model (T5-Base, 2^35 tokens), with their
    `source`: Table 1 (C4) or 2 (Wikipedia) without a regularizer, Table 3 for UL2, Table 4 for one
    regularizer switched on from the start (2^8 epochs); only rows of the chosen epochs, if any.
    None when the paper has no matching number."""
    corpus, objective, reg = (selection.get(k) for k in ("corpus", "objective", "regularizer"))
    if selection.get("variant") != "dense":
        return None
    if objective == OBJECTIVES["span"] and reg == "none" and corpus in C4_LIKE + WIKIPEDIA_LIKE:
        source, rows = (("Table 1, C4", paper.TABLE_1) if corpus in C4_LIKE else ("Table 2, Wikipedia", paper.TABLE_2))
    elif objective == OBJECTIVES["ul2"] and reg == "none" and corpus in C4_LIKE:
        source, rows = "Table 3, UL2 on C4", paper.TABLE_3[paper.TABLE_3.objective == "ul2"]
    elif objective == OBJECTIVES["span"] and corpus in C4_LIKE and reg and " + " not in reg and " from " not in reg:
        rows = paper.TABLE_4[[reg.startswith(name) for name in paper.TABLE_4.regularizer]]
        source, rows = "Table 4, C4, 2^27 unique tokens", rows.assign(epochs=256)
    else:
        return None
    epochs = selection.get("epochs", ALL)
    rows = rows if epochs in (None, ALL) else rows[rows.epochs == epochs]
    return rows.assign(source=source) if len(rows) else None


@dataclass
class Selection:
    runs: pd.DataFrame  # one row per matching run, with its final metrics
    curves: pd.DataFrame  # every evaluation of those runs
    summary: pd.DataFrame  # per U and epochs: seed means of the final metrics and the number of seeds
    paper: pd.DataFrame | None  # the paper's matching numbers, if it has any

    def labelled_curves(self) -> pd.DataFrame:
        """The curves ordered by epochs and U, with a `data` column naming each (U, epochs)."""
        ordered = self.curves.sort_values(["epochs", "unique_tokens", "seed", "tokens"])
        return ordered.assign(data=[subset_label(u, e) for u, e in zip(ordered.unique_tokens, ordered.epochs)])


def select(table: pd.DataFrame, curves: pd.DataFrame, **selection) -> Selection:
    """The runs, curves and summary of one selection (see `filter_runs`), and the paper's number."""
    chosen = filter_runs(table, **selection)
    metrics = [m for m in ("val_loss", "best_val_loss", "val_accuracy") if m in chosen]
    by_cell = chosen.groupby(["unique_tokens", "epochs"])
    summary = by_cell[metrics].mean().join(by_cell.seed.nunique().rename("seeds")).reset_index()
    return Selection(chosen, curves[curves.run.isin(chosen.run)], summary, paper_number(selection))
