"""The run ledger for the reproducibility page: what the cache holds and what it cost."""
from __future__ import annotations

import pandas as pd

from lib import runs


def ledger(profile: str | None = None) -> pd.DataFrame:
    """One row per cached run (optionally of one profile) with its cost and provenance."""
    rows = []
    for result in runs.all_results():
        if profile and result["config"].get("profile") != profile:
            continue
        meta = result["meta"]
        rows.append({**runs.flatten(result), "device": meta.get("device"), "world_size": meta.get("world_size"),
                     "threads": meta.get("threads"), "git_sha": meta.get("git_sha", "")[:10],
                     **{f"{k} version": v for k, v in meta.get("versions", {}).items()}})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Totals per profile: runs, tokens, FLOPs and machine time (threads x wall seconds)."""
    if table.empty:
        return pd.DataFrame()
    core_hours = table.wall_seconds * table.threads * table.world_size / 3600
    return (table.assign(core_hours=core_hours, two_core_hours=core_hours / 2)
            .groupby("profile").agg(runs=("key", "count"), total_tokens=("total_tokens", "sum"),
                                    train_flops=("train_flops", "sum"), wall_hours=("wall_seconds", lambda s: s.sum() / 3600),
                                    two_core_hours=("two_core_hours", "sum")))

