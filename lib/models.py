"""Models built from a config (never downloaded), with parameter and FLOP counts.

Dense runs are T5 v1.1 (gated-GELU). Variants, all selected by `ModelConfig`:
- a mixture of experts (`num_experts` >= 1): the FFN of every `sparse_step`-th layer of each stack
  becomes `MoEFeedForward`, gated-GELU experts of the dense d_ff (one expert has the dense FFN's
  parameters) with top-k routing (`router_top_k`: 1 is Switch's routing, 2 ST-MoE's), a capacity
  per expert and the router z-loss and load-balancing loss (`router_losses`);
- ALBERT-style sharing (`layer_repeats` k): each stack's distinct layers are applied k times;
- DropPath on every residual branch, its rate growing with depth, and dropout that can be switched
  on late (`set_dropout`).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration
from transformers.activations import ACT2FN

from lib.config import ModelConfig, RunConfig
from lib.objectives import objective_for
from lib.tokenizer import EOS_ID, PAD_ID

ROUTER_Z_LOSS = 1e-4  # ST-MoE's router z-loss coefficient (flaxformer st_moe_base.gin)
ROUTER_AUX_LOSS = 1e-2  # the Switch / ST-MoE load-balancing loss coefficient
RESIDUAL_LAYERS = ("LayerFF", "LayerSelfAttention", "LayerCrossAttention")  # class-name suffixes


def t5_config(model: ModelConfig, total_vocab: int) -> T5Config:
    return T5Config(
        vocab_size=total_vocab, d_model=model.d_model, d_kv=model.d_kv, d_ff=model.d_ff,
        num_layers=model.num_layers, num_decoder_layers=model.num_decoder_layers,
        num_heads=model.num_heads, feed_forward_proj="gated-gelu", dropout_rate=initial_dropout(model),
        tie_word_embeddings=False, pad_token_id=PAD_ID, eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID, use_cache=False,
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
    `path_rate` (kept branches scaled by 1 / (1 - path_rate)); the identity in eval mode.
    `build_model` gives each layer's branches the rate of its depth (`droppath_rate`)."""

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


def expert_capacity(tokens: int, experts: int, top_k: int, factor: float) -> int:
    """Slots per expert for a group of `tokens`: ceil(factor * k * tokens / experts) (k at most experts)."""
    return math.ceil(factor * min(top_k, experts) * tokens / experts)


class MoEFeedForward(nn.Module):
    """A mixture of gated-GELU experts in place of T5's FFN, with top-k routing (ST-MoE's recipe).

    Routing, per sequence (a group; capacities do not depend on the batch or the number of processes):
    - a linear router without bias gives each token logits over the experts, softmaxed in fp32;
    - each token chooses its k most probable experts; its gates are the chosen probabilities
      renormalised to sum to 1 over the k (k=1, Switch: the probability itself, so the router
      still learns through the gate);
    - each expert takes at most `expert_capacity` choices per sequence (capacity_factor in training,
      eval_capacity_factor in eval mode); first choices of every token claim slots before second
      choices, in token order; a choice over capacity is dropped, and a token whose choices are all
      dropped gets zero output (only the residual passes);
    - the kept choices are gathered into one [experts, sequences x capacity, d_model] buffer, grouped
      by expert, which three batched matmuls (torch.bmm) run through every expert at once; outputs are
      gathered back and summed with their gates. No Python loop over experts; only gathers (no
      scatter-add), so results are deterministic on GPUs too. Empty slots are multiplied too (zeros):
      the executed FFN FLOPs are experts x capacity per sequence, about capacity_factor x the k FFNs
      per token that `training_flops_per_input_token` counts.

    Each forward stores the router z-loss (mean squared logsumexp of the logits) and the
    load-balancing loss (experts x sum over experts of the fraction of tokens choosing it times its
    mean router probability; k on a uniform router) in `z_loss` and `aux_loss`; `router_losses`
    adds them to the training loss.
    """

    def __init__(self, d_model: int, d_ff: int, num_experts: int, top_k: int, capacity_factor: float,
                 eval_capacity_factor: float, dropout: float):
        super().__init__()
        self.num_experts, self.top_k = num_experts, min(top_k, num_experts)
        self.capacity_factor, self.eval_capacity_factor = capacity_factor, eval_capacity_factor
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.wi_0 = nn.Parameter(torch.empty(num_experts, d_model, d_ff))
        self.wi_1 = nn.Parameter(torch.empty(num_experts, d_model, d_ff))
        self.wo = nn.Parameter(torch.empty(num_experts, d_ff, d_model))
        self.dropout = nn.Dropout(dropout)
        self.act = ACT2FN["gelu_new"]  # T5 v1.1's gated-GELU
        nn.init.normal_(self.router.weight, std=2e-2)  # flaxformer's router initialisation
        for w in (self.wi_0, self.wi_1):
            nn.init.normal_(w, std=d_model ** -0.5)  # as T5 initialises its FFN
        nn.init.normal_(self.wo, std=d_ff ** -0.5)
        self.z_loss = self.aux_loss = None

    def capacity(self, tokens: int) -> int:
        factor = self.capacity_factor if self.training else self.eval_capacity_factor
        return expert_capacity(tokens, self.num_experts, self.top_k, factor)

    def route(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Routing of x [groups, tokens, d_model]: `expert`, `gate`, `slot` (position in its expert's
        buffer for its group) and `kept`, each [groups, tokens, k]; also sets the two router losses."""
        groups, tokens, _ = x.shape
        experts, k = self.num_experts, self.top_k
        with torch.autocast(x.device.type, enabled=False):
            logits = nn.functional.linear(x.float(), self.router.weight.float())
        probs = logits.softmax(-1)
        top, expert = probs.topk(k, dim=-1)
        gate = top if k == 1 else top / top.sum(-1, keepdim=True)
        # Priority: every token's first choice, in token order, then every second choice.
        by_rank = nn.functional.one_hot(expert.transpose(1, 2).reshape(groups, k * tokens), experts)
        slot = ((by_rank.cumsum(1) - 1) * by_rank).sum(-1).view(groups, k, tokens).transpose(1, 2)
        chosen = nn.functional.one_hot(expert, experts).amax(2).float()  # [groups, tokens, experts]
        self.aux_loss = experts * (chosen.mean(1) * probs.mean(1)).sum(-1).mean()
        self.z_loss = torch.logsumexp(logits, -1).square().mean()
        return {"expert": expert, "gate": gate, "slot": slot, "kept": slot < self.capacity(tokens)}

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        groups, tokens, d = hidden.shape
        route = self.route(hidden)
        capacity, n = self.capacity(tokens), groups * tokens
        buffer_rows = self.num_experts * groups * capacity  # expert-major: [expert, group, slot]
        rows = (route["expert"] * groups + torch.arange(groups, device=hidden.device).view(-1, 1, 1)) * capacity \
            + route["slot"]
        rows = torch.where(route["kept"], rows, buffer_rows).flatten()  # dropped: the zero row past the end
        token = torch.arange(n, device=hidden.device).repeat_interleave(self.top_k)
        source = torch.full((buffer_rows + 1,), n, device=hidden.device, dtype=torch.long)
        source[rows] = token  # which token fills each buffer row (n: none, a zero row)
        x = torch.cat([hidden.reshape(n, d), hidden.new_zeros(1, d)])
        buffer = x[source[:buffer_rows]].view(self.num_experts, groups * capacity, d)
        h = self.act(torch.bmm(buffer, self.wi_0)) * torch.bmm(buffer, self.wi_1)
        out = torch.bmm(self.dropout(h), self.wo).reshape(buffer_rows, d)
        out = torch.cat([out, out.new_zeros(1, d)])
        gate = (route["gate"] * route["kept"]).flatten().unsqueeze(1)
        return (out[rows] * gate).view(n, self.top_k, d).sum(1).view(groups, tokens, d).to(out.dtype)


def moe_layers(net: nn.Module) -> list[MoEFeedForward]:
    return [m for m in net.modules() if isinstance(m, MoEFeedForward)]


def router_losses(net: nn.Module) -> torch.Tensor | float:
    """ROUTER_AUX_LOSS x the mean load-balancing loss + ROUTER_Z_LOSS x the mean z-loss over the MoE
    layers, from the model's last forward pass (0.0 for a dense model); t5x averages over layers too."""
    layers = moe_layers(net)
    if not layers:
        return 0.0
    aux = torch.stack([m.aux_loss for m in layers]).mean()
    z = torch.stack([m.z_loss for m in layers]).mean()
    return ROUTER_AUX_LOSS * aux + ROUTER_Z_LOSS * z


def sparse_layer(index: int, model: ModelConfig) -> bool:
    """Whether layer `index` (from 0) of a stack has experts: every sparse_step-th, the last of each step."""
    return bool(model.num_experts) and index % model.sparse_step == model.sparse_step - 1


def droppath_rate(model: ModelConfig, layer: int, layers: int) -> float:
    """DropPath rate of the residual branches of `layer` (counted from 1) of a stack of `layers`."""
    return model.droppath * layer / layers


def build_model(model: ModelConfig, total_vocab: int, seed: int, input_length: int = 128) -> nn.Module:
    """A freshly initialised model with its output layer untied from the input embedding.

    transformers 5.24 ties `lm_head` to the shared embedding even with tie_word_embeddings=False
    (measured in this project's pilot); the head then starts at std 1.0 and the initial loss is ~100 instead of
    ~ln(vocab). We give it its own weight, initialised as T5 does (std d_model^-0.5), and drop it
    from the model's tie list so no later `tie_weights()` call re-ties it.

    MoE: the FFN of every `sparse_step`-th layer becomes a `MoEFeedForward` (capacities are computed
    per sequence at run time, so `input_length` is not needed). DropPath (stochastic depth): the
    branches of layer l (counted from 1) of a stack of L distinct layers are dropped with rate
    droppath x l / L, in the encoder and the decoder separately, so each stack's first layer has
    droppath / L and its last layer the full rate; with layer sharing a shared layer keeps the rate
    of its place among the distinct layers.
    """
    torch.manual_seed(seed)
    net = T5ForConditionalGeneration(t5_config(model, total_vocab))
    head = nn.Linear(model.d_model, total_vocab, bias=False)
    nn.init.normal_(head.weight, std=model.d_model ** -0.5)
    net.lm_head = head
    net._tied_weights_keys = {k: v for k, v in (net._tied_weights_keys or {}).items() if k != "lm_head.weight"}
    if model.num_experts:
        net.encoder.embed_tokens = net.decoder.embed_tokens = net.shared  # one input table module
    for stack in (net.encoder, net.decoder):
        blocks = list(stack.block)
        for index, block in enumerate(blocks):
            if sparse_layer(index, model):
                block.layer[-1].DenseReluDense = MoEFeedForward(
                    model.d_model, model.d_ff, model.num_experts, model.router_top_k, model.capacity_factor,
                    model.eval_capacity_factor, initial_dropout(model))
            if model.droppath:
                for branch in block.layer:
                    if type(branch).__name__.endswith(RESIDUAL_LAYERS):
                        branch.dropout = ResidualDrop(branch.dropout, droppath_rate(model, index + 1, len(blocks)))
        if model.layer_repeats > 1:
            stack.block = RepeatedLayers(stack.block, model.layer_repeats)
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
    active = those one token passes through (k of each MoE layer's experts)."""
    unique = {_storage_key(p): p.numel() for p in net.parameters()}
    total = sum(unique.values())
    embedding = net.shared.weight.numel() + (net.lm_head.weight.numel() if is_untied(net) else 0)
    inactive = sum(sum(w.numel() for w in (m.wi_0, m.wi_1, m.wo)) * (1 - m.top_k / m.num_experts)
                   for m in moe_layers(net))
    return {"params": total, "embedding_params": embedding, "non_embedding_params": total - embedding,
            "active_params": round(total - inactive)}


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

    An MoE layer costs its router plus k dense FFNs per token (the model's FLOPs, as MoE papers count
    them: more experts add parameters, not FLOPs). `MoEFeedForward` also multiplies the empty slots
    of its experts' buffers (zeros), up to capacity_factor x those FFN FLOPs, which this formula
    leaves out (`expert_capacity` gives the slots). Shared layers count once per application.
    """
    d, inner, ff = model.d_model, model.num_heads * model.d_kv, model.d_ff
    ffn = 2 * 3 * d * ff  # per token: the gated FFN's three d x ff matrices

    def ffn_flops(layers: int) -> float:
        """FFN FLOPs per token of one stack, summed over its layers."""
        sparse = sum(sparse_layer(i, model) for i in range(layers))
        moe = min(model.router_top_k, model.num_experts) * ffn + 2 * d * model.num_experts  # k experts, router
        return (layers * model.layer_repeats - sparse) * ffn + sparse * moe

    encoder_layers = model.num_layers * model.layer_repeats
    decoder_layers = model.num_decoder_layers * model.layer_repeats
    encoder = input_length * (encoder_layers * (2 * 4 * d * inner + 4 * input_length * inner)  # q, k, v, o, scores
                              + ffn_flops(model.num_layers))
    decoder_per_target = (decoder_layers * (2 * (4 * d * inner + 2 * d * inner)  # self-attn, cross q/o
                                            + 4 * target_length * inner + 4 * input_length * inner)  # scores
                          + ffn_flops(model.num_decoder_layers))
    decoder = target_length * decoder_per_target + decoder_layers * input_length * 2 * 2 * d * inner  # cross k/v
    head = target_length * 2 * d * total_vocab
    return 3 * (encoder + decoder + head) / input_length
