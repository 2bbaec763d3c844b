"""T5 v1.1 models: untied head, sane initial loss, parameter counts and the FLOP formula."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lib.models import ResidualDrop, build_model, is_untied, parameter_counts, training_flops_per_input_token
from lib.objectives import raw_length_for_inputs
from lib.profiles import get_profile

SMALL = [("smoke", size) for size in get_profile("smoke").sizes] + \
        [("cpu", size) for size in get_profile("cpu").sizes]


def _build(profile: str, size: str, seed: int = 0):
    p = get_profile(profile)
    total_vocab = p.vocab_size + 100
    return build_model(p.presets[size], total_vocab, seed), p.presets[size], total_vocab


@pytest.mark.parametrize("profile,size", SMALL)
def test_head_untied_and_initial_loss(profile, size):
    """lm_head has its own storage, stays untied after tie_weights(), and the loss on random
    tokens starts near ln(vocab) (a head tied to the std-1 embedding would start near 100)."""
    model, preset, total_vocab = _build(profile, size)
    assert is_untied(model)
    assert model.lm_head.weight.shape == (total_vocab, preset.d_model)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
        assert is_untied(model)
    assert model.lm_head.weight.std().item() == pytest.approx(preset.d_model ** -0.5, rel=0.05)
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(3, total_vocab, (4, 64), generator=g)
    labels = torch.randint(3, total_vocab, (4, 16), generator=g)
    with torch.no_grad():
        loss = model(input_ids=inputs, labels=labels).loss.item()
    assert abs(loss - math.log(total_vocab)) < 1.0


def test_build_is_seeded():
    a, _, _ = _build("smoke", "XS", seed=3)
    b, _, _ = _build("smoke", "XS", seed=3)
    c, _, _ = _build("smoke", "XS", seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["lm_head.weight"], sc["lm_head.weight"])


@pytest.mark.parametrize("profile,size", SMALL)
def test_parameter_counts_add_up(profile, size):
    model, preset, total_vocab = _build(profile, size)
    counts = parameter_counts(model)
    assert counts["params"] == sum(p.numel() for p in model.parameters())
    assert counts["params"] == counts["embedding_params"] + counts["non_embedding_params"]
    assert counts["embedding_params"] == 2 * total_vocab * preset.d_model


def test_cpu_presets_span_a_useful_range():
    counts = [parameter_counts(_build("cpu", size)[0])["params"] for size in get_profile("cpu").sizes]
    assert len(counts) >= 4
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert 0.2e6 <= counts[0] <= 1e6 and 3e6 <= counts[-1] <= 15e6  # a ladder of 15x in parameters


@pytest.mark.parametrize("size,expected", [("Base", 247.6e6), ("Large", 783.2e6), ("XL", 2.850e9)])
def test_paper_presets_match_t5_v1_1(size, expected):
    """T5.1.1 Base/Large/XL at vocab 32128 (built on the meta device: no memory, no init time)."""
    preset = get_profile("paper").presets[size]
    with torch.device("meta"):
        model = build_model(preset, 32128, 0)
    total = sum(p.numel() for p in model.parameters())
    assert total == pytest.approx(expected, rel=0.002)


def test_parameter_counts_on_meta_device():
    """Counting a paper-size model must not need its memory: meta tensors count like real ones."""
    preset = get_profile("smoke").presets["M"]
    real = parameter_counts(build_model(preset, 612, 0))
    with torch.device("meta"):
        meta = parameter_counts(build_model(preset, 612, 0))
    assert meta == real


@pytest.mark.parametrize("size", get_profile("smoke").sizes)
def test_flop_formula_matches_flop_counter(size):
    """The analytic matmul FLOPs per input token agree with PyTorch's FLOP counter over one
    forward + backward pass (batch 4) within 10 %."""
    model, preset, total_vocab = _build("smoke", size)
    input_length = 64
    target_length = raw_length_for_inputs(input_length, 0.15, 3.0)[1]
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(3, total_vocab, (4, input_length), generator=g)
    labels = torch.randint(3, total_vocab, (4, target_length), generator=g)
    with FlopCounterMode(display=False) as counter:
        model(input_ids=inputs, labels=labels).loss.backward()
    measured = counter.get_total_flops() / (4 * input_length)
    formula = training_flops_per_input_token(preset, total_vocab, input_length, target_length)
    assert formula == pytest.approx(measured, rel=0.10)


@pytest.mark.parametrize("layers,decoder_layers", [(2, 2), (3, 1)])
def test_droppath_rate_grows_with_depth(layers, decoder_layers):
    """Stochastic depth: every residual branch of layer l (from 1) of a stack of L layers has rate
    droppath x l / L, the encoder and the decoder counted separately (self-attention and FFN in the
    encoder, self-attention, cross-attention and FFN in the decoder); a branch at rate r drops about
    a fraction r of the sequences and scales the others by 1 / (1 - r)."""
    preset = dataclasses.replace(get_profile("smoke").presets["M"], num_layers=layers,
                                 num_decoder_layers=decoder_layers, droppath=0.3)
    model = build_model(preset, 612, 0)
    for stack, n, branches in ((model.encoder, layers, 2), (model.decoder, decoder_layers, 3)):
        assert len(stack.block) == n
        for index, block in enumerate(stack.block):
            rates = [branch.dropout.path_rate for branch in block.layer]
            assert all(isinstance(branch.dropout, ResidualDrop) for branch in block.layer)
            assert rates == pytest.approx([0.3 * (index + 1) / n] * branches)
    first = model.encoder.block[0].layer[0].dropout
    torch.manual_seed(0)
    out = first.train()(torch.ones(4000, 2, 3))
    kept = out[:, 0, 0] != 0
    rate = 0.3 / layers
    assert (1 - kept.float().mean()).item() == pytest.approx(rate, abs=0.03)
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - rate)))
    assert torch.all(out[~kept] == 0)


def test_droppath_with_shared_layers_keeps_one_rate_per_distinct_layer():
    preset = dataclasses.replace(get_profile("smoke").presets["M"], layer_repeats=2, droppath=0.2)
    model = build_model(preset, 612, 0)
    rates = [block.layer[0].dropout.path_rate for block in model.encoder.block]
    assert rates == pytest.approx([0.1, 0.2, 0.1, 0.2])  # each distinct layer applied twice
