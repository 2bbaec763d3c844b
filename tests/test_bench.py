"""`python -m lib.bench` without timing anything: the peer comparison's two sides get the same batches,
optimizer settings, schedule and clipping; utilisation divides by the matmul peak of the training's
own precision at the profile's threads; the step profile's table; the sweep layouts a one-thread
profile allows, as `runs.default_parallel` reads them; and the reproducibility page renders any
bench.json, old or new. Goals and speeds are never asserted here."""
from __future__ import annotations

import json
import tempfile

import matplotlib
import nbformat
import numpy as np
import pytest
import torch

from lib import bench, runs
from lib.numerics import cpu_facts
from lib.paths import repo_root
from lib.peer import build_trainer
from lib.train import learning_rate

matplotlib.use("Agg")


# --- the peer comparison -----------------------------------------------------------------------

def test_peer_sides_get_the_same_batches_optimizer_schedule_and_clipping(monkeypatch):
    cfg, vocab = bench._bench_config("smoke", "M")
    data = bench.step_data(cfg, vocab, steps=2)
    batch, steps = cfg.optim.batch_size, 1 + bench.WARMUP_STEPS + 2
    assert len(data[0]) == batch * steps

    seen = []  # the batches our step trains on
    real_loss = bench.training_loss
    monkeypatch.setattr(bench, "training_loss", lambda model, inputs, targets, *a, **k:
                        seen.append((inputs.clone(), targets.clone())) or real_loss(model, inputs, targets, *a, **k))
    model, ours, step = bench.training_step(cfg, vocab, cfg.precision, False, *data)
    step(0)
    step(1)

    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(cfg, vocab, *data, max_steps=steps, output_dir=tmp)
        theirs_batches = [b for _, b in zip(range(2), trainer.get_train_dataloader())]
        theirs = trainer.create_optimizer()
        schedule = trainer.create_scheduler(steps, theirs)

    for i, (inputs, targets) in enumerate(seen):  # step i: rows i*batch to (i+1)*batch, on both sides
        rows = slice(i * batch, (i + 1) * batch)
        assert torch.equal(inputs, torch.as_tensor(data[0][rows])) and torch.equal(targets, torch.as_tensor(data[1][rows]))
        assert torch.equal(theirs_batches[i]["input_ids"], inputs) and torch.equal(theirs_batches[i]["labels"], targets)

    def groups(optimizer, net):
        names = {id(p): n for n, p in net.named_parameters()}
        return [(sorted(names[id(p)] for p in g["params"]), g["weight_decay"], g["betas"], g["eps"])
                for g in optimizer.param_groups]

    assert type(ours) is type(theirs) is torch.optim.AdamW
    assert groups(ours, model) == groups(theirs, trainer.model)  # decay (if any) on the same matrices, same betas, eps
    assert groups(theirs, trainer.model)[0][0] == sorted(n for n, p in model.named_parameters() if p.ndim >= 2)
    assert len({id(p) for g in theirs.param_groups for p in g["params"]}) == sum(1 for _ in model.parameters())
    lrs = []
    for _ in range(steps):
        lrs.append(theirs.param_groups[0]["lr"])
        theirs.step()
        schedule.step()
    assert lrs == pytest.approx([learning_rate(i, cfg) for i in range(steps)], rel=1e-12)
    assert trainer.args.max_grad_norm == cfg.optim.grad_clip > 0
    assert trainer.args.bf16 == (cfg.precision == "bf16")
    assert trainer.args.train_batch_size == batch and trainer.args.use_cpu


def test_peer_alternates_the_sides_on_one_data_set_at_the_profile_threads(monkeypatch):
    calls, datasets = [], []

    def ours(profile, size, dtype, steps, compile_model=False, before_timing=None, experts=0, data=None):
        calls.append(("ours", torch.get_num_threads(), dtype))
        datasets.append(data)
        return {"tokens_per_s": 300.0 if len(calls) < 3 else 200.0, "params": 2_000_000, "optimizer": "AdamW (for-loop)"}

    def trainer(cfg, total_vocab, data, steps, warmup):
        calls.append(("trainer", torch.get_num_threads(), cfg.precision))
        datasets.append(data)
        assert warmup == 1 + bench.WARMUP_STEPS  # its timed window holds the same steps as ours
        return {"tokens_per_s": 100.0 if len(calls) < 3 else 150.0, "threads": torch.get_num_threads(),
                "optimizer": "AdamW (fused)"}

    monkeypatch.setattr(bench, "train_throughput", ours)
    monkeypatch.setattr(bench, "trainer_throughput", trainer)
    before = torch.get_num_threads()
    [row] = bench.peer("cpu", ["S"], steps=4, rounds=2)
    assert [c[0] for c in calls] == ["ours", "trainer", "ours", "trainer"]
    assert {c[1] for c in calls} == {1} and {c[2] for c in calls} == {"fp32"}  # cpu v2: one thread, fp32
    assert all(d is datasets[0] for d in datasets)  # one data set for both sides
    assert torch.get_num_threads() == before  # the process's threads are restored
    assert row["threads"] == row["trainer_threads"] == 1 and row["precision"] == "fp32"
    assert row["ratio"] == pytest.approx(300.0 / 150.0)  # each side's best round
    assert row["goal_applies"] and row["kernels"] == torch.backends.cpu.get_cpu_capability()


def test_peer_measures_a_small_profile_without_a_goal():
    assert bench.goal_presets("cpu") == bench.large_presets("cpu") == ["S", "M"]
    assert bench.large_presets("smoke") == [] and bench.goal_presets("smoke") == ["M"]


# --- utilisation, threads, bf16 ----------------------------------------------------------------

@pytest.mark.parametrize("profile, fraction", [("cpu", 0.5), ("gpu", 0.125)])
def test_utilisation_uses_the_same_precision_peak(monkeypatch, profile, fraction):
    peaks = {"fp32": 100.0, "bf16": 400.0}
    asked = []
    monkeypatch.setattr(bench, "matmul_gflops", lambda dtype, repeats=10: asked.append(
        (dtype, torch.get_num_threads())) or peaks[dtype])
    monkeypatch.setattr(bench, "profile_throughput", lambda profile, size, dtype, steps: {
        "gflops": 50.0, "params": 1, "dtype": dtype})
    precision = bench.get_profile(profile).precision
    [row] = bench.utilisation(profile, ["S"], steps=3)
    assert asked == [(precision, bench.bench_threads(profile))]
    assert row["peak_gflops"] == peaks[precision] and row["fraction_of_peak"] == pytest.approx(fraction)
    assert row["precision"] == precision and row["threads"] == bench.bench_threads(profile)


def test_bench_threads_follow_the_profile(monkeypatch):
    monkeypatch.setenv("REPEAT_THREADS", "3")
    assert bench.bench_threads("cpu") == 1  # v2: one thread per run, whatever the environment says
    assert bench.bench_threads("smoke") == 3


def test_bf16_sentence_says_whether_bf16_is_native():
    facts = {"cpu_model": "Some CPU", "aten_capability": "AVX2", "native_bf16": True}
    native = bench.bf16_sentence(facts, {"fp32": 50.0, "bf16": 200.0}, threads=1)
    assert "computes bf16 natively" in native and "at 1 thread " in native and "(4.0x)" in native
    emulated = bench.bf16_sentence({**facts, "native_bf16": False}, {"fp32": 50.0, "bf16": 10.0})
    assert "no native bf16" in emulated and "emulated" in emulated


def test_numerics_paragraph():
    text = bench.numerics_paragraph({"bf16_native": "THE SENTENCE."})
    for words in ("trains in fp32", "AVX2", "1 torch thread per run", "tests/test_numerics.py", "THE SENTENCE.",
                  "`gpu` and `paper`"):
        assert words in text
    assert "not measured yet" in bench.numerics_paragraph({})


def test_precision_check_is_retired():
    assert "precision" not in bench.PARTS and not hasattr(bench, "precision_check")
    assert bench.RETIRED == {"precision_check": "precision"}
    assert "precision_check" not in (repo_root() / "book" / "reproducibility.ipynb").read_text()


# --- the step profile --------------------------------------------------------------------------

def test_step_profile_table():
    result = bench.step_profile("smoke", "XS", steps=1, top=5)
    assert result["preset"] == "XS" and result["threads"] == bench.bench_threads("smoke")
    shares = [row["share"] for row in result["ops"]]
    assert len(shares) == 5 and shares == sorted(shares, reverse=True) and all(0 <= s <= 1 for s in shares)
    assert all("::" in row["op"] and not row["op"].startswith("autograd::") for row in result["ops"])
    assert [p["phase"] for p in result["phases"]] == list(bench.PHASES)
    assert all(p["share"] > 0 for p in result["phases"])
    assert 0 < result["matmul_share"] < 1 and result["op_calls_per_step"] > 0
    json.dumps(result)  # it goes into bench.json


# --- sweep layouts ---------------------------------------------------------------------------

def test_sweep_modes_compare_processes_of_the_profile_threads(monkeypatch, tmp_path):
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    assert bench.sweep_layouts("cpu") == [(1, 1), (2, 1)]  # one thread per run: one process or two
    assert bench.sweep_layouts("smoke") == [(1, 2), (2, 1)]  # no fixed threads: all cores, or one each
    layouts = []
    monkeypatch.setattr(bench, "_side_by_side", lambda profile, size, processes, threads, steps:
                        layouts.append((processes, threads)) or [1000.0] * processes)
    modes = bench.sweep_modes("cpu", ["XS"], steps=4)
    assert layouts == [(1, 1), (2, 1)] and modes["best"] == {"XS": 2}
    assert [m["threads_per_process"] for m in modes["modes"]] == [1, 1]
    monkeypatch.setenv("REPEAT_CACHE_DIR", str(tmp_path))
    runs.write_atomic(tmp_path / "bench.json", {"sweep_modes": modes})
    assert runs.default_parallel([bench.get_profile("cpu").config("XS")]) == 2


# --- the reproducibility page --------------------------------------------------------------------

OLD_BENCH = {  # what bench.json held before version 2 of the cpu profile
    "threads": 2, "device": "CPU: AMD EPYC", "matmul_gflops": {"fp32": 190.9, "bf16": 424.4},
    "train": [{"preset": "S", "params": 2034432, "dtype": "bf16", "compiled": False, "tokens_per_s": 1.0, "gflops": 1.0}],
    "peer": [{"preset": "S", "precision": "bf16", "compiled": True, "ours_tokens_per_s": 2.0,
              "trainer_tokens_per_s": 1.0, "ratio": 2.0}],
    "utilisation": [{"preset": "S", "dtype": "fp32", "compiled": True, "gflops": 80.9, "bf16_peak_gflops": 404.8,
                     "fraction_of_bf16_peak": 0.2}],
    "sweep_modes": {"profile": "cpu", "steps": 40, "quick": False,
                    "modes": [{"preset": "XS", "processes": 1, "threads_per_process": 2, "runs_per_hour": 71.4},
                              {"preset": "XS", "processes": 2, "threads_per_process": 1, "runs_per_hour": 98.9}],
                    "best": {"XS": 2}},
    "book_cpu_hours": 3.3,
    "precision_check": {"bf16": [0.26, 0.27], "fp32": [0.25, 0.27], "seeds": [0, 1], "verdict": "..."},
    "measured": {"peer": {"quick": False}, "precision": {"quick": False}},
}


def _new_bench(monkeypatch) -> dict:
    """A bench.json in the current form, its rows made by the bench's own functions (measurements faked)."""
    monkeypatch.setattr(bench, "train_throughput", lambda *a, **k: {"tokens_per_s": 300.0, "params": 2_000_000,
                                                                    "optimizer": "AdamW (for-loop)"})
    monkeypatch.setattr(bench, "trainer_throughput", lambda *a, **k: {"tokens_per_s": 200.0, "threads": 1,
                                                                      "optimizer": "AdamW (fused)"})
    monkeypatch.setattr(bench, "matmul_gflops", lambda dtype, repeats=10: {"fp32": 60.0, "bf16": 200.0}[dtype])
    monkeypatch.setattr(bench, "profile_throughput", lambda *a: {"gflops": 30.0, "params": 2_000_000})
    monkeypatch.setattr(bench, "_side_by_side", lambda profile, size, processes, threads, steps: [1e4] * processes)
    peak = {"fp32": 60.0, "bf16": 200.0}
    return {"threads": 1, "profile": "cpu", "device": "CPU: test", "matmul_gflops": peak, "matmul_threads": 1,
            "bf16_native": bench.bf16_sentence(cpu_facts(), peak, 1),
            "peer": bench.peer("cpu", ["S", "M"], steps=2), "utilisation": bench.utilisation("cpu", ["S", "M"], 2),
            "step_profile": bench.step_profile("smoke", "XS", steps=1),
            "sweep_modes": bench.sweep_modes("cpu", ["XXS", "XS"], steps=2), "book_cpu_hours": 1.0,
            "measured": {"step_profile": {"quick": True}}}


def _render_speed_section(monkeypatch, tmp_path, content: dict) -> str:
    """Run the page's cells from "## This machine's speed" on, standalone, against `content` as
    bench.json; everything they display, as text (tables rendered to HTML, as the book does)."""
    import IPython.display
    import matplotlib.pyplot as plt

    shown = []

    def display(*objects):
        for obj in objects:
            text = getattr(obj, "data", None)
            shown.append(text if isinstance(text, str) else obj.to_html() if hasattr(obj, "to_html") else repr(obj))

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(plt, "show", lambda *a, **k: plt.close("all"))
    monkeypatch.setenv("REPEAT_CACHE_DIR", str(tmp_path))
    (tmp_path / "bench.json").write_text(json.dumps(content))
    cells = nbformat.read(repo_root() / "book" / "reproducibility.ipynb", as_version=4).cells
    start = next(i for i, c in enumerate(cells) if c.source.startswith("## This machine's speed"))
    namespace = {"profile": "cpu"}
    for cell in cells[start:]:
        if cell.cell_type == "code":
            exec(compile(cell.source, "reproducibility.ipynb", "exec"), namespace)
    return "\n".join(shown)


def test_moe_proxy_measures_every_pair_and_verdicts_read_their_own():
    """Each of finding 3.6's pairs is measured (dense row, then MoE row with its ratios), and
    `seconds_per_run` takes a pair's seconds from the bench only if the bench measured that pair
    on the table's profile."""
    import pandas as pd
    from lib import sweeps
    from lib import variant_verdicts as vv

    rows = bench.moe_proxy("smoke", steps=1)
    pairs = sweeps.moe_pairs("smoke")
    assert [r["preset"] for r in rows] == [p for b, (d, e) in pairs.items() for p in (d, f"{b} MoE {e}")]
    assert all(0 < r["flops_ratio"] < 1 and r["wall_ratio"] > 0 for r in rows[1::2])
    (backbone, (dense, experts)), = pairs.items()
    table = pd.DataFrame({"architecture": ["dense", f"MoE {experts}"], "size": [dense, backbone],
                          "train_seconds": [7.0, 3.0], "total_tokens": 1000, "profile": "smoke"})
    for profile, source in (("smoke", "the benchmark"), ("cpu", "the runs' own times")):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(vv, "read_bench", lambda: {"profile": profile, "moe_proxy": rows})
            seconds, found = vv.seconds_per_run(table, "dense", f"MoE {experts}")
        assert found == source
        if source == "the benchmark":
            assert seconds["dense"] == pytest.approx(1000 / rows[0]["tokens_per_s"])
        else:
            assert seconds == {"dense": 7.0, f"MoE {experts}": 3.0}


def test_page_renders_an_empty_bench(monkeypatch, tmp_path):
    text = _render_speed_section(monkeypatch, tmp_path, {})
    for key, part in (("peer", "peer"), ("utilisation", "utilisation"), ("step_profile", "step_profile"),
                      ("sweep_modes", "sweep_modes")):
        assert f"*`{key}`: not measured yet: run `python -m lib.bench --only {part}`.*" in text
    assert "trains in fp32" in text and "not measured yet: run `python -m lib.bench --only matmul`" in text


def test_page_renders_an_old_bench_without_the_new_keys(monkeypatch, tmp_path):
    text = _render_speed_section(monkeypatch, tmp_path, OLD_BENCH)
    assert "*`peer`: not measured yet (bench.json holds an older form of it)" in text
    assert "*`utilisation`: not measured yet (bench.json holds an older form of it)" in text
    assert "*`step_profile`: not measured yet: run `python -m lib.bench --only step_profile`.*" in text
    assert "Square-matmul peak at 2 torch thread(s)" in text and "98.9" in text  # what it still holds
    assert "precision_check" not in text


def test_page_renders_a_new_bench(monkeypatch, tmp_path):
    content = json.loads(json.dumps(_new_bench(monkeypatch)))  # as it reads back from the file
    text = _render_speed_section(monkeypatch, tmp_path, content)
    assert "not measured yet" not in text.replace("`tokenize`: not measured yet", "").replace(
        "`train`: not measured yet", "")
    assert "S 1.50x, M 1.50x" in text and "met for 2 of the 2 presets" in text and "at 1 torch thread(s)" in text
    assert "Against the fp32 matmul peak of 60 GFLOP/s at 1 torch thread(s)" in text and "50%" in text
    assert "matmuls take" in text and content["step_profile"]["ops"][0]["op"] in text
    assert "XXS: 2 process(es)" in text and content["bf16_native"] in text
    assert "quick bench run" in text  # the quick step profile is flagged
    assert np.isfinite(content["step_profile"]["step_ms"])
