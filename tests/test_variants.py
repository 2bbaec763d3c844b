"""The variants of findings 3.5-3.11: MoE, layer sharing, UL2 and the regularizers."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import lib.train
from lib import sweeps
from lib.config import RunConfig
from lib.models import ResidualDrop, build_model, parameter_counts, set_dropout, training_flops_per_input_token
from lib.objectives import IGNORE_INDEX, UL2, UL2_DENOISERS, SpanCorruption
from lib.tokenizer import EOS_ID, PAD_ID

TOTAL_VOCAB = 612  # smoke: 512 pieces + 100 sentinels


@pytest.fixture(scope="module")
def preset(smoke):
    return smoke.presets["M"]  # 2 layers per stack, so half of them can be shared twice


def _flops(model, cfg_model, batch=4, length=64, target=16) -> float:
    """Measured training-step FLOPs per encoder input token (FlopCounterMode)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(3, 500, (batch, length), generator=g), torch.randint(3, 500, (batch, target), generator=g)
    extra = {"output_router_logits": True} if cfg_model.num_experts else {}
    with FlopCounterMode(display=False) as counter:
        model(input_ids=x, labels=y, **extra).loss.backward()
    return counter.get_total_flops() / (batch * length)


# --- configuration -----------------------------------------------------------------------------

def test_variant_fields_at_default_keep_old_keys(base_cfg):
    """A config written before the variant fields existed has the same key as today's default one;
    any non-default variant field changes the key."""
    old = base_cfg.to_dict()
    del old["data"]["objective"], old["optim"]["label_smoothing"]
    for name in ("dropout_start", "droppath", "num_experts", "capacity_factor", "sparse_step", "layer_repeats"):
        del old["model"][name]
    assert RunConfig.from_dict(old).key() == base_cfg.key()
    changed = [base_cfg.replace(data__objective="ul2"), base_cfg.replace(model__num_experts=4, model__num_layers=2, model__num_decoder_layers=2),
               base_cfg.replace(model__layer_repeats=2), base_cfg.replace(model__droppath=0.1),
               base_cfg.replace(model__dropout=0.1, model__dropout_start=0.5),
               base_cfg.replace(optim__label_smoothing=0.1)]
    assert len({c.key() for c in changed} | {base_cfg.key()}) == len(changed) + 1


@pytest.mark.parametrize("change, message", [
    ({"data__objective": "causal"}, "objective must be one of"),
    ({"model__dropout": 1.0}, "dropout must be in"),
    ({"model__dropout_start": 1.5}, "fraction of training"),
    ({"model__num_experts": 4, "model__layer_repeats": 2}, "dense models only"),
    ({"model__num_experts": 4}, "some layer is sparse"),  # the smoke XS has one layer
])
def test_bad_variant_values_are_refused(base_cfg, change, message):
    with pytest.raises(ValueError, match=message):
        base_cfg.replace(**change)


# --- mixture of experts and sharing ------------------------------------------------------------

def test_more_experts_more_parameters_same_flops(preset):
    """Experts add trainable parameters; the FLOPs per token stay those of one expert (analytic and
    counted), and the active parameters grow only by the routers."""
    counts, analytic, counted = [], [], []
    for experts in (1, 4, 8):
        m = dataclasses.replace(preset, num_experts=experts)
        model = build_model(m, TOTAL_VOCAB, seed=0, input_length=64)
        counts.append(parameter_counts(model))
        analytic.append(training_flops_per_input_token(m, TOTAL_VOCAB, 64, 16))
        counted.append(_flops(model, m))
    assert counts[0]["params"] < counts[1]["params"] < counts[2]["params"]
    routers = (preset.num_layers // 2 + preset.num_decoder_layers // 2) * preset.d_model  # per expert
    assert counts[2]["active_params"] - counts[0]["active_params"] == routers * (8 - 1)
    assert max(analytic) / min(analytic) < 1.01
    assert max(counted) / min(counted) < 1.05  # capacity limits may drop a few tokens


def test_moe_expert_matches_dense_ffn(preset):
    """One Switch expert (1.5 d_ff, ungated) has the dense gated FFN's parameters, and a 1-expert
    Switch model has the dense model's parameter count; the embedding table is shared."""
    dense = parameter_counts(build_model(preset, TOTAL_VOCAB, 0))
    switch = build_model(dataclasses.replace(preset, num_experts=1), TOTAL_VOCAB, 0, 64)
    assert switch.encoder.embed_tokens is switch.shared and switch.decoder.embed_tokens is switch.shared
    sparse_layers = preset.num_layers // 2 + preset.num_decoder_layers // 2
    assert parameter_counts(switch)["params"] - dense["params"] == sparse_layers * preset.d_model  # routers


def test_router_losses_are_in_the_training_loss(smoke):
    cfg = sweeps.variant_cell("smoke", model={"num_experts": 4})
    model = build_model(cfg.model, TOTAL_VOCAB, 0, cfg.data.input_length)
    x, y = torch.randint(3, 500, (4, 64)), torch.randint(3, 500, (4, 16))
    plain = model(input_ids=x, labels=y).loss
    assert lib.train.training_loss(model, x, y, cfg, pads_inputs=False) > plain


def test_layer_sharing_counts(preset):
    """(a) half the layers applied twice: fewer parameters, the same FLOPs; (b) every layer applied
    twice: the same parameters, more FLOPs (counted FLOPs agree with the formula)."""
    half = dataclasses.replace(preset, num_layers=1, num_decoder_layers=1, layer_repeats=2)
    twice = dataclasses.replace(preset, layer_repeats=2)
    base_model, half_model, twice_model = (build_model(m, TOTAL_VOCAB, 0) for m in (preset, half, twice))
    params = [parameter_counts(m)["params"] for m in (base_model, half_model, twice_model)]
    flops = [training_flops_per_input_token(m, TOTAL_VOCAB, 64, 16) for m in (preset, half, twice)]
    assert params[1] < params[0] == params[2]
    assert flops[1] == flops[0] < flops[2]
    for model, m, f in zip((base_model, half_model, twice_model), (preset, half, twice), flops):
        assert _flops(model, m) == pytest.approx(f, rel=0.05)
    assert len(list(twice_model.encoder.block)) == 2 * preset.num_layers
    assert len(twice_model.encoder.block.state_dict()) == len(base_model.encoder.block.state_dict())


def test_shared_layers_equal_a_deep_model_with_copied_weights(preset):
    """Applying L shared layers twice computes what a 2L-layer model with those weights copied does."""
    shared_cfg = dataclasses.replace(preset, layer_repeats=2)
    deep_cfg = dataclasses.replace(preset, num_layers=2 * preset.num_layers,
                                   num_decoder_layers=2 * preset.num_decoder_layers)
    shared, deep = build_model(shared_cfg, TOTAL_VOCAB, 0).eval(), build_model(deep_cfg, TOTAL_VOCAB, 1).eval()
    state = {}
    for name, tensor in shared.state_dict().items():
        parts = name.split(".")
        if parts[1] == "block":
            for copy in range(2):
                state[".".join(parts[:2] + [str(int(parts[2]) + copy * preset.num_layers)] + parts[3:])] = tensor
        else:
            state[name] = tensor
    deep.load_state_dict(state, strict=False)  # later blocks have no relative-bias table, as in T5
    x, y = torch.randint(3, 500, (2, 64)), torch.randint(3, 500, (2, 16))
    with torch.no_grad():
        assert torch.allclose(shared(input_ids=x, labels=y).logits, deep(input_ids=x, labels=y).logits, atol=1e-5)


# --- UL2 ---------------------------------------------------------------------------------------

def _fill_sentinels(inputs: np.ndarray, targets: np.ndarray) -> list[int]:
    """Rebuild a raw chunk from one span-corruption (inputs, targets) pair."""
    spans, current = {}, None
    for t in targets:
        if t >= VOCAB_LIMIT:
            current = int(t)
            spans[current] = []
        elif t != EOS_ID:
            spans[current].append(int(t))
    out = []
    for t in inputs:
        if t == EOS_ID:
            break
        out.extend(spans[int(t)] if t >= VOCAB_LIMIT else [int(t)])
    return out


VOCAB_LIMIT = TOTAL_VOCAB - 100  # ids at or above are sentinels


def test_ul2_denoisers_statistics_and_inversion():
    """Each example starts with its denoiser's mode token; the mixture is R 40 %, X 40 %, S 20 %;
    R corrupts ~15 % and X ~50 % of the chunk; S splits it into prefix and continuation; every
    example decodes back to its raw chunk; padding is PAD in inputs and IGNORE_INDEX in targets."""
    ul2 = UL2(64, TOTAL_VOCAB)
    rng = np.random.default_rng(0)
    raw = rng.integers(3, VOCAB_LIMIT, size=(600, ul2.raw_length))
    inputs, targets = ul2(raw, rng)
    assert inputs.shape == (600, ul2.padded_input_length) and targets.shape == (600, ul2.target_length)
    modes = {m: ul2.mode_token(m) for m in ("R", "X", "S")}
    assert max(modes.values()) < targets[targets >= VOCAB_LIMIT].min()  # mode tokens are never sentinels
    share = {m: np.mean(inputs[:, 0] == tok) for m, tok in modes.items()}
    assert share["R"] == pytest.approx(0.4, abs=0.06) and share["X"] == pytest.approx(0.4, abs=0.06)
    assert share["S"] == pytest.approx(0.2, abs=0.05)
    for x, y, chunk in zip(inputs, targets, raw):
        x, y = x[x != PAD_ID], y[y != IGNORE_INDEX]
        mode, body = x[0], x[1:]
        if mode == modes["S"]:
            assert list(body[:-1]) + list(y[:-1]) == list(chunk)
            assert body[-1] == EOS_ID and y[-1] == EOS_ID
        else:
            assert _fill_sentinels(body, y) == list(chunk)
            noise = sum(1 for t in y if t < VOCAB_LIMIT and t != EOS_ID) / len(chunk)
            assert noise == pytest.approx(0.15 if mode == modes["R"] else 0.5, abs=0.02)
    assert {d[0] for d in UL2_DENOISERS} == {"R", "X", "S"}


def test_ul2_reads_the_same_chunks_and_probe_as_span_corruption(smoke, store):
    """UL2 runs see the same unique chunks as span corruption, and are evaluated on the same
    span-corruption probe, behind the R mode token."""
    from lib.subsets import RepeatedSubset, validation_set
    span, ul2 = sweeps.variant_cell("smoke"), sweeps.variant_cell("smoke", objective="ul2")
    a, b = RepeatedSubset(span.data, store, 8, 0), RepeatedSubset(ul2.data, store, 8, 0)
    assert np.array_equal(a.chunks, b.chunks)
    (x_span, y_span), (x_ul2, y_ul2) = validation_set(span.data, store, 16), validation_set(ul2.data, store, 16)
    assert np.array_equal(y_span, y_ul2) and np.array_equal(x_span, x_ul2[:, 1:])
    assert set(x_ul2[:, 0]) == {b.objective.mode_token("R")}


def test_span_corruption_is_unchanged_by_the_ul2_plumbing():
    span = SpanCorruption(64, TOTAL_VOCAB)
    assert not span.pads_inputs and span.padded_input_length == 64
    x = np.arange(12).reshape(2, 6)
    assert span.eval_inputs(x) is x


# --- regularizers ------------------------------------------------------------------------------

def test_droppath_is_identity_in_eval_and_drops_branches_in_training(preset):
    plain = build_model(preset, TOTAL_VOCAB, 0)
    drop = build_model(dataclasses.replace(preset, droppath=0.5), TOTAL_VOCAB, 0)
    wrappers = [m for m in drop.modules() if isinstance(m, ResidualDrop)]
    assert len(wrappers) == 2 * preset.num_layers + 3 * preset.num_decoder_layers  # residual branches
    x, y = torch.randint(3, 500, (4, 64)), torch.randint(3, 500, (4, 16))
    with torch.no_grad():
        plain.eval(), drop.eval()
        assert torch.equal(plain(input_ids=x, labels=y).logits, drop(input_ids=x, labels=y).logits)
        branch = torch.ones(1000, 3, 5)
        last = next(w for w in wrappers if w.path_rate == 0.5)  # a stack's last layer: the full rate
        last.train()
        out = last(branch)
        kept = out[:, 0, 0] != 0
        assert 0.4 < kept.float().mean() < 0.6
        assert torch.all(out[kept] == 2.0) and torch.all(out[~kept] == 0)


def test_set_dropout_reaches_every_dropout(preset):
    for m in (preset, dataclasses.replace(preset, num_experts=4), dataclasses.replace(preset, droppath=0.1)):
        model = build_model(m, TOTAL_VOCAB, 0, 64)
        set_dropout(model, 0.3)
        rates = [mod.p for mod in model.modules() if isinstance(mod, torch.nn.Dropout)]
        rates += [mod.dropout for mod in model.modules() if isinstance(getattr(mod, "dropout", None), float)]
        assert len(rates) > 5 and set(rates) == {0.3}


def test_late_dropout_switches_on_at_the_right_step(smoke, store, monkeypatch):
    """In a real training run, every dropout module is off until dropout_start of the run and at
    the configured rate from that step on."""
    cfg = sweeps.variant_cell("smoke", model={"dropout": 0.2, "dropout_start": 0.5})
    seen = {}
    real_step = lib.train.training_loss

    def spy(model, inputs, targets, cfg_, pads):
        step = len(seen)
        seen[step] = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
        return real_step(model, inputs, targets, cfg_, pads)

    monkeypatch.setattr(lib.train, "training_loss", spy)
    lib.train.train(cfg, progress=False)
    switch = round(0.5 * cfg.steps)
    assert all(seen[s] == {0.0} for s in range(switch))
    assert all(seen[s] == {0.2} for s in range(switch, cfg.steps))


def test_label_smoothing_loss(smoke):
    cfg = sweeps.variant_cell("smoke", optim={"label_smoothing": 0.1})
    model = build_model(cfg.model, TOTAL_VOCAB, 0)
    x, y = torch.randint(3, 500, (4, 64)), torch.randint(3, 500, (4, 16))
    logits = model(input_ids=x, labels=y).logits
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), label_smoothing=0.1)
    assert lib.train.training_loss(model, x, y, cfg, False).item() == pytest.approx(expected.item(), rel=1e-5)


# --- end to end --------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", [
    {"model": {"num_experts": 4, "dropout": 0.1, "dropout_start": 0.5}},
    {"objective": "ul2", "model": {"layer_repeats": 2, "droppath": 0.1}, "optim": {"label_smoothing": 0.1}},
])
def test_variant_runs_resume_exactly(variant, tmp_path, monkeypatch):
    """A variant run interrupted at its first checkpoint (before the late-dropout switch) and
    resumed ends exactly like an uninterrupted run, with finite metrics."""
    cfg = sweeps.variant_cell("smoke", **variant)
    full = lib.train.train(cfg, progress=False).to_dict()
    real_save = lib.train._save_checkpoint

    def save_then_crash(accelerator, folder, state):
        real_save(accelerator, folder, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(lib.train, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        lib.train.train(cfg, checkpoint_dir=tmp_path / "ckpt", progress=False)
    monkeypatch.setattr(lib.train, "_save_checkpoint", real_save)
    resumed = lib.train.train(cfg, checkpoint_dir=tmp_path / "ckpt", progress=False).to_dict()
    assert json.dumps(resumed["curve"]) == json.dumps(full["curve"])
    assert np.isfinite(full["final"]["val_loss"])
    assert full["meta"]["flops_per_input_token"] > 0
