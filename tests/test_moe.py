"""The mixture-of-experts layer (lib.models.MoEFeedForward): routing, losses, exactness, determinism,
bookkeeping, and a smoke MoE run through the real entry point."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import lib.train
from lib import runs, sweeps
from lib.models import (ROUTER_AUX_LOSS, ROUTER_Z_LOSS, MoEFeedForward, build_model, expert_capacity, moe_layers,
                        parameter_counts, router_losses, training_flops_per_input_token)

TOTAL_VOCAB = 612  # smoke: 512 pieces + 100 sentinels
D_MODEL, D_FF = 16, 24


def _layer(experts=8, top_k=2, capacity=1.25, eval_capacity=2.0, seed=0) -> MoEFeedForward:
    torch.manual_seed(seed)
    return MoEFeedForward(D_MODEL, D_FF, experts, top_k, capacity, eval_capacity, dropout=0.0)


def _inputs(groups=3, tokens=40, seed=1) -> torch.Tensor:
    return torch.randn(groups, tokens, D_MODEL, generator=torch.Generator().manual_seed(seed))


def _expert(layer: MoEFeedForward, e: int, x: torch.Tensor) -> torch.Tensor:
    """Expert e's gated-GELU FFN on tokens x [n, d], written out densely."""
    return (layer.act(x @ layer.wi_0[e]) * (x @ layer.wi_1[e])) @ layer.wo[e]


@pytest.mark.parametrize("top_k,capacity", [(1, 0.5), (2, 0.5), (2, 1.25), (4, 1.0)])
def test_routing_invariants(top_k, capacity):
    """Each token goes to at most k distinct experts; no expert holds more than its capacity of a
    sequence's choices and their slots are distinct; first choices claim slots before second ones;
    gates sum to 1 over a token's k choices; dropped choices add nothing and a token whose choices
    are all dropped gets zero output."""
    layer, x = _layer(top_k=top_k, capacity=capacity), _inputs()
    groups, tokens, _ = x.shape
    with torch.no_grad():
        route, out = layer.route(x), layer(x)
    cap = layer.capacity(tokens)
    assert cap == math.ceil(capacity * top_k * tokens / 8)
    expert, gate, slot, kept = route["expert"], route["gate"], route["slot"], route["kept"]
    assert expert.shape == gate.shape == slot.shape == kept.shape == (groups, tokens, top_k)
    for g in range(groups):
        for t in range(tokens):
            assert len(set(expert[g, t].tolist())) == top_k  # k distinct experts
        for e in range(8):
            mine = expert[g] == e
            held = slot[g][mine & kept[g]]
            assert len(held) <= cap and len(set(held.tolist())) == len(held)
            assert sorted(held.tolist()) == list(range(len(held)))  # slots filled from 0
            assert len(held) == min(cap, int(mine.sum()))  # nothing dropped while there is room
            first, later = slot[g][:, 0][mine[:, 0]], slot[g][:, 1:][mine[:, 1:]]
            assert later.numel() == 0 or first.numel() == 0 or first.max() < later.min()  # first choices first
    if top_k > 1:
        assert torch.allclose(gate.sum(-1), torch.ones(groups, tokens))
    else:
        probs = torch.softmax(x @ layer.router.weight.T, -1)
        assert torch.allclose(gate[..., 0], probs.max(-1).values)  # Switch: the probability itself
    dropped = ~kept.any(-1)
    if capacity < 1.0:
        assert dropped.any()
    assert torch.all(out[dropped] == 0)
    # every output row is the gate-weighted sum of its kept experts, computed densely
    for g in range(groups):
        for t in range(tokens):
            want = torch.zeros(D_MODEL)
            for j in range(top_k):
                if kept[g, t, j]:
                    want += gate[g, t, j] * _expert(layer, int(expert[g, t, j]), x[g, t][None])[0]
            assert torch.allclose(out[g, t], want, atol=1e-5)


def test_losses_on_a_uniform_and_on_a_collapsed_router():
    """Uniform router (zero logits): z-loss = ln(E)^2 and the load-balancing loss = k (each expert
    gets k/E of the choices at probability 1/E: E * sum_e (k/E)(1/E)). A router sending everything to
    one expert gets a balance loss near E (k = 1). Finite and positive on a random router."""
    x = _inputs()
    for top_k in (1, 2):
        layer = _layer(top_k=top_k)
        with torch.no_grad():
            layer.router.weight.zero_()
            layer(x)
        assert layer.z_loss.item() == pytest.approx(math.log(8) ** 2, rel=1e-6)
        assert layer.aux_loss.item() == pytest.approx(top_k, rel=1e-6)
    layer = _layer(top_k=1)
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[0] = 10.0  # positive inputs: expert 0 wins every token with probability ~1
        layer(x.abs())
    assert layer.aux_loss.item() == pytest.approx(8, rel=0.02)
    assert layer.z_loss.item() > 100
    layer = _layer()
    layer(x)
    for loss in (layer.aux_loss, layer.z_loss):
        assert torch.isfinite(loss) and loss.item() > 0 and loss.requires_grad


def test_top1_with_ample_capacity_is_the_chosen_expert_per_token():
    """k = 1 and capacity for every token: each token's output is its most probable expert's FFN,
    computed one token at a time, times that probability (Switch)."""
    layer, x = _layer(top_k=1, capacity=8.0), _inputs(groups=2, tokens=24)
    with torch.no_grad():
        out = layer(x)
        probs = torch.softmax(x @ layer.router.weight.T, -1)
        for g in range(2):
            for t in range(24):
                p, e = probs[g, t].max(0)
                assert torch.allclose(out[g, t], p * _expert(layer, int(e), x[g, t][None])[0], atol=1e-6)


def test_capacity_factor_in_training_and_in_evaluation():
    layer = _layer(top_k=2, capacity=1.25, eval_capacity=2.0)
    assert layer.capacity(128) == math.ceil(1.25 * 2 * 128 / 8) == 40
    layer.eval()
    assert layer.capacity(128) == math.ceil(2.0 * 2 * 128 / 8) == 64


def test_experts_run_in_one_batched_matmul_per_projection():
    """No loop over experts: one forward of a 16-expert layer calls bmm three times (wi_0, wi_1, wo)."""
    layer, x = _layer(experts=16), _inputs()
    calls = []
    real = torch.bmm

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    torch.bmm = counting
    try:
        layer(x)
    finally:
        torch.bmm = real
    assert len(calls) == 3 and all(shape[0] == 16 for shape in calls)


@pytest.fixture(scope="module")
def moe_preset(smoke):
    return dataclasses.replace(smoke.presets["M"], **sweeps.moe(4))


def test_model_has_every_other_ffn_sparse_and_counts_add_up(moe_preset):
    """Layers 2, 4, ... of each stack are MoE; parameters: the dense model plus (E - 1) experts of the
    dense FFN's size and a router per sparse layer; active: k experts."""
    model = build_model(moe_preset, TOTAL_VOCAB, 0)
    dense_cfg = dataclasses.replace(moe_preset, num_experts=0, router_top_k=1)
    dense = parameter_counts(build_model(dense_cfg, TOTAL_VOCAB, 0))
    for stack in (model.encoder, model.decoder):
        kinds = [type(block.layer[-1].DenseReluDense).__name__ for block in stack.block]
        assert kinds == ["T5DenseGatedActDense", "MoEFeedForward"]
    sparse, d, ff, e = 2, moe_preset.d_model, moe_preset.d_ff, 4
    counts = parameter_counts(model)
    assert counts["params"] - dense["params"] == sparse * ((e - 1) * 3 * d * ff + d * e)
    assert counts["params"] - counts["active_params"] == sparse * (e - 2) * 3 * d * ff
    assert len(moe_layers(model)) == sparse


def test_flop_formula_counts_k_experts_and_the_counter_adds_the_empty_slots(moe_preset):
    """The formula counts the router and k dense FFNs per token; PyTorch's FLOP counter also sees the
    empty capacity slots the batched matmuls multiply. MoE minus dense agrees with both, exactly."""
    dense_cfg = dataclasses.replace(moe_preset, num_experts=0, router_top_k=1)
    batch, length, target = 4, 64, 16
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(3, 500, (batch, length), generator=g), torch.randint(3, 500, (batch, target), generator=g)
    counted, formula = [], []
    for cfg in (dense_cfg, moe_preset):
        model = build_model(cfg, TOTAL_VOCAB, 0)
        with FlopCounterMode(display=False) as counter:
            (model(input_ids=x, labels=y).loss + router_losses(model)).backward()
        counted.append(counter.get_total_flops() / (batch * length))
        formula.append(training_flops_per_input_token(cfg, TOTAL_VOCAB, length, target))
    d, ff, e, k = moe_preset.d_model, moe_preset.d_ff, moe_preset.num_experts, moe_preset.router_top_k
    router = 3 * 2 * d * e * (length + target) / length  # one sparse layer per stack
    assert formula[1] - formula[0] == pytest.approx(3 * 2 * 3 * d * ff * (k - 1) * (length + target) / length + router)
    empty = sum(e * expert_capacity(n, e, k, moe_preset.capacity_factor) - k * n for n in (length, target))
    assert counted[1] - counted[0] == pytest.approx(formula[1] - formula[0] + 3 * 2 * 3 * d * ff * empty / length)


def test_training_loss_adds_the_router_losses(moe_preset, smoke):
    cfg = sweeps.variant_cell("smoke", model=sweeps.moe(4))
    model = build_model(cfg.model, TOTAL_VOCAB, 0)
    x, y = torch.randint(3, 500, (4, 64)), torch.randint(3, 500, (4, 16))
    loss = lib.train.training_loss(model, x, y, cfg, pads_inputs=False)
    layers = moe_layers(model)
    aux = sum(m.aux_loss for m in layers) / len(layers)
    z = sum(m.z_loss for m in layers) / len(layers)
    plain = model(input_ids=x, labels=y).loss
    assert loss.item() == pytest.approx((plain + ROUTER_AUX_LOSS * aux + ROUTER_Z_LOSS * z).item(), rel=1e-6)
    assert 0.01 < (loss - plain).item() < 0.1  # aux near k = 2 at initialisation, z small


def test_moe_is_deterministic(moe_preset):
    """Same seed: the same weights, loss and gradients, bit for bit; another seed differs."""
    x, y = torch.randint(3, 500, (4, 64)), torch.randint(3, 500, (4, 16))

    def run(seed):
        model = build_model(moe_preset, TOTAL_VOCAB, seed)
        loss = model(input_ids=x, labels=y).loss + router_losses(model)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    (a, ga), (b, gb), (c, _) = run(5), run(5), run(6)
    assert a == b and all(torch.equal(p, q) for p, q in zip(ga, gb)) and a != c


def test_smoke_moe_run_through_the_cache(smoke):
    """A top-2 MoE trains a few steps through `runs.run` and reports finite metrics and its counts."""
    cfg = smoke.config("S", unique_tokens=2**11, epochs=2, label="test moe")
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, **sweeps.moe(4)))
    assert cfg.steps == 8
    result = runs.run(cfg, allow_train=True, progress=False)
    final, meta = result["final"], result["meta"]
    assert np.isfinite(final["val_loss"]) and np.isfinite(final["train_loss"])
    assert meta["active_params"] < meta["params"]
    assert meta["flops_per_input_token"] == pytest.approx(
        training_flops_per_input_token(cfg.model, TOTAL_VOCAB, 64, result["meta"]["target_length"]))
