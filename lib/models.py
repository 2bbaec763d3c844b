"""Models built from a config (never downloaded), with parameter and FLOP counts.

Dense runs are T5 v1.1 (gated-GELU). Variants, all selected by `ModelConfig`:
- a Switch Transformer (`num_experts` >= 1, top-1 routing in every `sparse_step`-th FFN), whose
  experts have 1.5x the dense d_ff with a plain (ungated) GELU, so one expert matches the dense
  FFN's parameters and FLOPs: more experts add parameters at fixed FLOPs per token;
- ALBERT-style sharing (`layer_repeats` k): each stack's distinct layers are applied k times;
- DropPath on every residual branch, and dropout that can be switched on late (`set_dropout`).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from transformers import (SwitchTransformersConfig, SwitchTransformersForConditionalGeneration, T5Config,
                          T5ForConditionalGeneration)

from lib.config import ModelConfig, RunConfig
from lib.objectives import objective_for
from lib.tokenizer import EOS_ID, PAD_ID

EXPERT_FF_SCALE = 1.5  # an ungated expert with 1.5 d_ff has the parameters and FLOPs of a gated-GELU FFN
RESIDUAL_LAYERS = ("LayerFF", "LayerSelfAttention", "LayerCrossAttention")  # class-name suffixes


def t5_config(model: ModelConfig, total_vocab: int) -> T5Config:
    return T5Config(
        vocab_size=total_vocab, d_model=model.d_model, d_kv=model.d_kv, d_ff=model.d_ff,
        num_layers=model.num_layers, num_decoder_layers=model.num_decoder_layers,
        num_heads=model.num_heads, feed_forward_proj="gated-gelu", dropout_rate=initial_dropout(model),
        tie_word_embeddings=False, pad_token_id=PAD_ID, eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID, use_cache=False,
    )


def switch_config(model: ModelConfig, total_vocab: int, input_length: int) -> SwitchTransformersConfig:
    capacity = math.ceil(model.capacity_factor * input_length / model.num_experts)
    return SwitchTransformersConfig(
        vocab_size=total_vocab, d_model=model.d_model, d_kv=model.d_kv,
        d_ff=int(EXPERT_FF_SCALE * model.d_ff), dense_act_fn="gelu_new",
        num_layers=model.num_layers, num_decoder_layers=model.num_decoder_layers, num_heads=model.num_heads,
        num_experts=model.num_experts, expert_capacity=capacity,
        num_sparse_encoder_layers=model.num_layers // model.sparse_step,
        num_sparse_decoder_layers=model.num_decoder_layers // model.sparse_step,
        dropout_rate=initial_dropout(model), tie_word_embeddings=False, pad_token_id=PAD_ID,
        eos_token_id=EOS_ID, decoder_start_token_id=PAD_ID, use_cache=False,
    )


def initial_dropout(model: ModelConfig) -> float:
    """The dropout rate at step 0: zero while late dropout waits for its switch-on point."""
    return 0.0 if model.dropout_start > 0 else model.dropout


class RepeatedLayers(nn.ModuleList):
    """A stack's distinct layers, iterated `repeats` times (ALBERT-style cross-layer sharing).

    Only the distinct layers are registered, so parameters and checkpoints hold each once.
    """

    def __init__(self, layers: nn.ModuleList, repeats: int):
        super().__init__(layers)
        self.repeats = repeats

    def __iter__(self):
        for _ in range(self.repeats):
            yield from super().__iter__()


class ResidualDrop(nn.Module):
    """Dropout, then DropPath: the whole residual branch of a sequence is dropped with probability
    `path_rate` (kept branches scaled by 1 / (1 - path_rate)); the identity in eval mode."""

    def __init__(self, dropout: nn.Dropout, path_rate: float):
        super().__init__()
        self.dropout = dropout
        self.path_rate = path_rate

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        branch = self.dropout(branch)
        if not self.training or self.path_rate == 0:
            return branch
        keep = torch.rand(branch.shape[0], *([1] * (branch.dim() - 1)), device=branch.device) >= self.path_rate
        return branch * keep.to(branch.dtype) / (1 - self.path_rate)


def build_model(model: ModelConfig, total_vocab: int, seed: int, input_length: int = 128) -> nn.Module:
    """A freshly initialised model with its output layer untied from the input embedding.

    transformers 5.24 ties `lm_head` to the shared embedding even with tie_word_embeddings=False
    (measured in this project's pilot); the head then starts at std 1.0 and the initial loss is ~100 instead of
    ~ln(vocab). We give it its own weight, initialised as T5 does (std d_model^-0.5), and drop it
    from the model's tie list so no later `tie_weights()` call re-ties it.
    """
    torch.manual_seed(seed)
    if model.num_experts:
        net = SwitchTransformersForConditionalGeneration(switch_config(model, total_vocab, input_length))
        net.encoder.embed_tokens = net.decoder.embed_tokens = net.shared  # one input table, as in T5
    else:
        net = T5ForConditionalGeneration(t5_config(model, total_vocab))
    head = nn.Linear(model.d_model, total_vocab, bias=False)
    nn.init.normal_(head.weight, std=model.d_model ** -0.5)
    net.lm_head = head
    net._tied_weights_keys = {k: v for k, v in (net._tied_weights_keys or {}).items() if k != "lm_head.weight"}
    if model.layer_repeats > 1:
        for stack in (net.encoder, net.decoder):
            stack.block = RepeatedLayers(stack.block, model.layer_repeats)
    if model.droppath:
        for module in list(net.modules()):
            if type(module).__name__.endswith(RESIDUAL_LAYERS):
                module.dropout = ResidualDrop(module.dropout, model.droppath)
    return net


def set_dropout(net: nn.Module, rate: float) -> None:
    """Set the rate of every dropout in the model: nn.Dropout modules and attention-probability dropout."""
    for module in net.modules():
        if isinstance(module, nn.Dropout):
            module.p = rate
        elif isinstance(getattr(module, "dropout", None), float):
            module.dropout = rate


def _storage_key(p: torch.Tensor):
    """Identifies a tensor's storage; meta tensors have none (data_ptr 0), so use the object."""
    return id(p) if p.device.type == "meta" else p.data_ptr()


def is_untied(net: nn.Module) -> bool:
    return _storage_key(net.lm_head.weight) != _storage_key(net.shared.weight)


def parameter_counts(net: nn.Module) -> dict[str, int]:
    """Trainable parameters, counting shared tensors once; embeddings = input table + output layer;
    active = those one token passes through (one expert per MoE layer)."""
    unique = {_storage_key(p): p.numel() for p in net.parameters()}
    total = sum(unique.values())
    embedding = net.shared.weight.numel() + (net.lm_head.weight.numel() if is_untied(net) else 0)
    inactive = sum(sum(p.numel() for p in m.experts.parameters()) * (1 - 1 / m.router.num_experts)
                   for m in net.modules() if hasattr(m, "experts") and hasattr(m, "router"))
    return {"params": total, "embedding_params": embedding, "non_embedding_params": total - embedding,
            "active_params": int(total - inactive)}


def meta_parameter_counts(model: ModelConfig, total_vocab: int, input_length: int = 128) -> dict[str, int]:
    """`parameter_counts` of a model built on the meta device (no memory, no initialisation)."""
    with torch.device("meta"):
        return parameter_counts(build_model(model, total_vocab, 0, input_length))


def run_flops_per_input_token(cfg: RunConfig, total_vocab: int) -> float:
    """Training FLOPs per encoder input token of a run, with its objective's padded lengths
    (padding costs compute too)."""
    objective = objective_for(cfg.data.objective, cfg.data.input_length, total_vocab,
                              cfg.data.noise_density, cfg.data.mean_noise_span)
    padded = objective.padded_input_length
    return (training_flops_per_input_token(cfg.model, total_vocab, padded, objective.target_length)
            * padded / cfg.data.input_length)


def training_flops_per_input_token(model: ModelConfig, total_vocab: int, input_length: int,
                                   target_length: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3 x forward) per encoder input token.

    MoE experts match the dense FFN's FLOPs (top-1 routing), plus the router; shared layers count
    once per application.
    """
    d, inner, ff = model.d_model, model.num_heads * model.d_kv, model.d_ff
    router = 2 * d * model.num_experts / model.sparse_step if model.num_experts else 0  # per layer, averaged
    dense_per_token = 2 * (4 * d * inner + 3 * d * ff) + router  # q, k, v, o and the FFN (3 d x ff matrices)
    encoder_layers = model.num_layers * model.layer_repeats
    decoder_layers = model.num_decoder_layers * model.layer_repeats
    encoder = encoder_layers * input_length * (dense_per_token + 4 * input_length * inner)
    decoder_per_target = (2 * (4 * d * inner + 2 * d * inner + 3 * d * ff) + router  # self-attn, cross q/o, FFN
                          + 4 * target_length * inner + 4 * input_length * inner)  # attention scores
    decoder = decoder_layers * (target_length * decoder_per_target
                                + input_length * 2 * 2 * d * inner)  # cross k/v on encoder out
    head = target_length * 2 * d * total_vocab
    return 3 * (encoder + decoder + head) / input_length
