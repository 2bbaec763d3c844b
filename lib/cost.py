"""What a run costs: parameters, training FLOPs, and wall time on this CPU and on a named GPU.

Parameters come from `lib.models` on a model built on the meta device (no memory, so the paper's
XL is free to count) and FLOPs from its `training_flops_per_input_token`, exactly as training
records them. CPU time uses this machine's measured training speed (`python -m lib.bench`,
`bench.json` in the cache): a preset it measured uses its tokens/s; any other model is
extrapolated from the measured preset nearest in FLOPs per token, at that preset's achieved
FLOP/s. GPU time is FLOPs / (peak x an assumed utilisation).
"""
from __future__ import annotations

import math

import pandas as pd

from lib import paper
from lib.config import RunConfig
from lib.models import meta_parameter_counts, run_flops_per_input_token
from lib.profiles import PROFILES, get_profile
from lib.tokenizer import NUM_SENTINELS

GPU_PEAK_FLOPS = {"H100 SXM": 989e12, "A100": 312e12}  # dense bf16 tensor-core peaks (vendor datasheets)
DEFAULT_UTILISATION = 0.4  # an assumed model-FLOPs utilisation, typical of well-tuned training
BENCH_PROFILE = "cpu"  # the profile whose presets `lib.bench` measures unless bench.json says otherwise
PAPER_XL = paper.DENSE_XL_RUN  # the paper's cost of one Dense-XL run and the 6 N D arithmetic


def total_vocab(cfg: RunConfig) -> int:
    return cfg.data.vocab_size + NUM_SENTINELS


def model_cost(cfg: RunConfig) -> dict:
    """Parameters (lib.models), training FLOPs per input token (padding included, as training
    counts them), total tokens, total training FLOPs and the 6 N D rule of thumb."""
    counts = meta_parameter_counts(cfg.model, total_vocab(cfg), cfg.data.input_length)
    per_token = run_flops_per_input_token(cfg, total_vocab(cfg))
    tokens = cfg.data.total_tokens
    active = counts.get("active_params", counts["params"])  # MoE: the parameters one token passes through
    return {**counts, "flops_per_input_token": per_token, "total_tokens": tokens,
            "train_flops": per_token * tokens, "six_n_d_flops": 6.0 * active * tokens}


def measured_rates(bench: dict, precision: str) -> pd.DataFrame:
    """The bench's training speeds at one precision: per measured preset, input tokens/s, its
    FLOPs per token (by `model_cost`) and the achieved FLOP/s in those units."""
    profile = get_profile(bench.get("profile", BENCH_PROFILE))
    rows = []
    for row in bench.get("train", []):
        if row["dtype"] != precision or row["preset"] not in profile.presets:
            continue
        ref = profile.config(row["preset"])
        cost = model_cost(ref)
        if cost["params"] != row["params"]:  # the bench measured another shape under this name
            continue
        rows.append({"preset": row["preset"], "model": ref.model, "input_length": ref.data.input_length,
                     "vocab": total_vocab(ref), "tokens_per_s": row["tokens_per_s"],
                     "flops_per_input_token": cost["flops_per_input_token"],
                     "achieved_flops": row["tokens_per_s"] * cost["flops_per_input_token"]})
    return pd.DataFrame(rows)


def cpu_seconds(cfg: RunConfig, bench: dict | None) -> tuple[float, str]:
    """Estimated training seconds on the benchmarked CPU, and how the estimate was made."""
    rates = measured_rates(bench, cfg.precision) if bench else pd.DataFrame()
    if rates.empty:
        return math.nan, "no CPU benchmark for this precision (run `python -m lib.bench`)"
    cost = model_cost(cfg)
    same = rates[(rates.model == cfg.model) & (rates.input_length == cfg.data.input_length)
                 & (rates.vocab == total_vocab(cfg))]
    if len(same) and getattr(cfg.data, "objective", "span") == "span":
        return cost["total_tokens"] / same.tokens_per_s.iloc[0], f"measured ({same.preset.iloc[0]})"
    nearest = rates.loc[(rates.flops_per_input_token.map(math.log) - math.log(cost["flops_per_input_token"])).abs().idxmin()]
    return (cost["train_flops"] / nearest.achieved_flops,
            f"extrapolated from {nearest.preset} ({nearest.achieved_flops / 1e9:.0f} GFLOP/s)")


def gpu_seconds(train_flops: float, gpu: str, utilisation: float = DEFAULT_UTILISATION) -> float:
    """Training seconds on `gpu` at `utilisation` of its dense bf16 peak."""
    if gpu not in GPU_PEAK_FLOPS:
        raise ValueError(f"unknown GPU {gpu!r}; known peaks (dense bf16): {sorted(GPU_PEAK_FLOPS)}")
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation is a fraction of peak in (0, 1], got {utilisation!r}")
    return train_flops / (GPU_PEAK_FLOPS[gpu] * utilisation)


def estimate(cfg: RunConfig, gpus=tuple(GPU_PEAK_FLOPS), utilisation: float = DEFAULT_UTILISATION,
             bench: dict | None = None) -> dict:
    """One row: the config's model cost, CPU hours (with their basis) and hours on each GPU."""
    cost = model_cost(cfg)
    seconds, basis = cpu_seconds(cfg, bench)
    return {"profile": cfg.profile, "preset": cfg.model.name, **cost, "cpu_hours": seconds / 3600,
            "cpu_basis": basis,
            **{f"{gpu} hours": gpu_seconds(cost["train_flops"], gpu, utilisation) / 3600 for gpu in gpus}}


def profile_table(gpus=tuple(GPU_PEAK_FLOPS), utilisation: float = DEFAULT_UTILISATION,
                  bench: dict | None = None) -> pd.DataFrame:
    """`estimate` for every preset of every profile, trained on the profile's T unique tokens."""
    return pd.DataFrame([estimate(profile.config(size), gpus, utilisation, bench)
                         for profile in PROFILES.values() for size in profile.sizes])


def preset_table() -> pd.DataFrame:
    """Every profile's presets: shape, parameters (`model_cost`), learning rate, and the profile's
    budget and numerics."""
    rows = []
    for profile in PROFILES.values():
        for size in profile.sizes:
            cfg, counts = profile.config(size), model_cost(profile.config(size))
            m = cfg.model
            rows.append({"profile": profile.name, "preset": size, "d_model": m.d_model,
                         "layers": f"{m.num_layers} + {m.num_decoder_layers}", "heads": m.num_heads, "d_ff": m.d_ff,
                         "params (M)": counts["params"] / 1e6, "non-embedding (M)": counts["non_embedding_params"] / 1e6,
                         "lr": cfg.optim.lr, "T": f"2^{profile.total_tokens.bit_length() - 1}",
                         "batch": cfg.optim.batch_size, "inputs": cfg.data.input_length,
                         "vocab": cfg.data.vocab_size, "precision": cfg.precision})
    return pd.DataFrame(rows)


def paper_comparison(gpu: str = "H100 SXM", utilisation: float = DEFAULT_UTILISATION) -> pd.DataFrame:
    """The paper profile's XL at 2^35 tokens beside the paper's reported cost."""
    cfg = get_profile("paper").config("XL")
    cost = model_cost(cfg)
    hours = gpu_seconds(cost["train_flops"], gpu, utilisation) / 3600
    return pd.DataFrame([
        {"quantity": "parameters", "ours": cost["params"], "paper": math.nan},
        {"quantity": "training FLOPs, 6 N D", "ours": cost["six_n_d_flops"], "paper": PAPER_XL["six_n_d_flops"]},
        {"quantity": "training FLOPs, matmuls counted (encoder-decoder)", "ours": cost["train_flops"], "paper": math.nan},
        {"quantity": f"{gpu} hours at {utilisation:.0%} of peak", "ours": hours, "paper": math.nan},
        {"quantity": "cost per run (USD)", "ours": math.nan, "paper": PAPER_XL["usd"]},
        {"quantity": f"USD per {gpu} hour at which our estimate costs the same", "ours": PAPER_XL["usd"] / hours,
         "paper": math.nan},
    ])
