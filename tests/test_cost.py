"""The cost calculator against lib.models, a trained run's own record, and a synthetic benchmark."""
from __future__ import annotations

import math

import pytest

from lib import cost
from lib.models import build_model, parameter_counts, training_flops_per_input_token
from lib.objectives import raw_length_for_inputs
from lib.profiles import PROFILES, get_profile

CPU = get_profile("cpu")


def synthetic_bench(tokens_per_s: float = 1000.0) -> dict:
    """A bench.json that measured only the cpu profile's S preset (fp32 and bf16 alike)."""
    params = cost.model_cost(CPU.config("S"))["params"]
    return {"train": [{"preset": "S", "params": params, "dtype": dtype, "compiled": False,
                       "tokens_per_s": tokens_per_s, "gflops": 1.0} for dtype in ("fp32", "bf16")]}


def test_agrees_with_lib_models():
    cfg = CPU.config("S")
    vocab = CPU.vocab_size + 100
    expected = parameter_counts(build_model(cfg.model, vocab, seed=0))
    target = raw_length_for_inputs(cfg.data.input_length, cfg.data.noise_density, cfg.data.mean_noise_span)[1]
    found = cost.model_cost(cfg)
    assert {k: found[k] for k in expected} == expected
    assert found["flops_per_input_token"] == training_flops_per_input_token(cfg.model, vocab, cfg.data.input_length,
                                                                            target)


def test_agrees_with_a_trained_run(base_cfg, base_result):
    found, meta = cost.model_cost(base_cfg), base_result["meta"]
    assert found["params"] == meta["params"]
    assert found["flops_per_input_token"] == pytest.approx(meta["flops_per_input_token"])
    assert found["train_flops"] == pytest.approx(meta["train_flops"])


def test_total_is_per_token_times_tokens():
    cfg = CPU.config("XS", unique_tokens=2**15, epochs=64)
    found = cost.model_cost(cfg)
    assert found["total_tokens"] == 2**21
    assert found["train_flops"] == pytest.approx(found["flops_per_input_token"] * 2**21)
    assert found["six_n_d_flops"] == pytest.approx(6 * found["params"] * 2**21)


def test_cpu_time_is_linear_in_tokens():
    bench = synthetic_bench(1000.0)
    seconds, basis = cost.cpu_seconds(CPU.config("S", unique_tokens=2**20), bench)
    assert seconds == pytest.approx(2**20 / 1000.0) and basis.startswith("measured")
    assert cost.cpu_seconds(CPU.config("S", unique_tokens=2**20, epochs=4), bench)[0] == pytest.approx(4 * seconds)
    small, basis = cost.cpu_seconds(CPU.config("XS", unique_tokens=2**20), bench)  # not measured: by FLOPs
    assert basis.startswith("extrapolated from S")
    assert cost.cpu_seconds(CPU.config("XS", unique_tokens=2**21), bench)[0] == pytest.approx(2 * small)
    ratio = cost.model_cost(CPU.config("XS"))["flops_per_input_token"] / cost.model_cost(CPU.config("S"))["flops_per_input_token"]
    assert small == pytest.approx(seconds * ratio)


def test_missing_benchmark_gives_nan():
    seconds, basis = cost.cpu_seconds(CPU.config("S"), None)
    assert math.isnan(seconds) and "lib.bench" in basis
    assert math.isnan(cost.cpu_seconds(CPU.config("S"), {"train": []})[0])


def test_gpu_time_and_unknown_gpu():
    assert cost.gpu_seconds(989e12 * 0.4, "H100 SXM", 0.4) == pytest.approx(1.0)
    assert cost.gpu_seconds(1e15, "A100", 0.5) == pytest.approx(2 * cost.gpu_seconds(1e15, "A100", 1.0))
    with pytest.raises(ValueError, match="unknown GPU 'TPU v9'.*A100"):
        cost.gpu_seconds(1e15, "TPU v9")
    with pytest.raises(ValueError, match="utilisation"):
        cost.gpu_seconds(1e15, "A100", 0.0)


def test_every_profile_and_the_paper_xl():
    table = cost.profile_table(bench=synthetic_bench())
    assert len(table) == sum(len(p.sizes) for p in PROFILES.values())
    xl = table[(table.profile == "paper") & (table.preset == "XL")].iloc[0]
    assert xl.total_tokens == 2**35 and xl.cpu_basis.startswith("extrapolated")
    comparison = cost.paper_comparison().set_index("quantity")
    six_n_d = comparison.loc["training FLOPs, 6 N D"]
    assert six_n_d.ours == pytest.approx(six_n_d.paper, rel=0.05)  # the 6 N D arithmetic, from our count
