"""T5 v1.1-style models built from a config (never downloaded), with parameter and FLOP counts."""
from __future__ import annotations

import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from lib.config import ModelConfig
from lib.tokenizer import EOS_ID, PAD_ID


def t5_config(model: ModelConfig, total_vocab: int) -> T5Config:
    return T5Config(
        vocab_size=total_vocab, d_model=model.d_model, d_kv=model.d_kv, d_ff=model.d_ff,
        num_layers=model.num_layers, num_decoder_layers=model.num_decoder_layers,
        num_heads=model.num_heads, feed_forward_proj="gated-gelu", dropout_rate=model.dropout,
        tie_word_embeddings=False, pad_token_id=PAD_ID, eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID,
    )


def build_model(model: ModelConfig, total_vocab: int, seed: int) -> T5ForConditionalGeneration:
    """A freshly initialised T5 v1.1 with its output layer untied from the input embedding.

    transformers 5.24 ties `lm_head` to the shared embedding even with tie_word_embeddings=False
    (PILOT.md lesson 1); the head then starts at std 1.0 and the initial loss is ~100 instead of
    ~ln(vocab). We give it its own weight, initialised as T5 does (std d_model^-0.5), and drop it
    from the model's tie list so no later `tie_weights()` call re-ties it.
    """
    torch.manual_seed(seed)
    t5 = T5ForConditionalGeneration(t5_config(model, total_vocab))
    head = nn.Linear(model.d_model, total_vocab, bias=False)
    nn.init.normal_(head.weight, std=model.d_model ** -0.5)
    t5.lm_head = head
    t5._tied_weights_keys = {k: v for k, v in (t5._tied_weights_keys or {}).items() if k != "lm_head.weight"}
    return t5


def _storage_key(p: torch.Tensor):
    """Identifies a tensor's storage; meta tensors have none (data_ptr 0), so use the object."""
    return id(p) if p.device.type == "meta" else p.data_ptr()


def is_untied(t5: T5ForConditionalGeneration) -> bool:
    return _storage_key(t5.lm_head.weight) != _storage_key(t5.shared.weight)


def parameter_counts(t5: T5ForConditionalGeneration) -> dict[str, int]:
    """Trainable parameters, counting shared tensors once; embeddings = input table + output layer."""
    unique = {_storage_key(p): p.numel() for p in t5.parameters()}
    total = sum(unique.values())
    embedding = t5.shared.weight.numel() + (t5.lm_head.weight.numel() if is_untied(t5) else 0)
    return {"params": total, "embedding_params": embedding, "non_embedding_params": total - embedding}


def training_flops_per_input_token(model: ModelConfig, total_vocab: int, input_length: int,
                                   target_length: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3 x forward) per encoder input token."""
    d, inner, ff = model.d_model, model.num_heads * model.d_kv, model.d_ff
    dense_per_token = 2 * (4 * d * inner + 3 * d * ff)  # q, k, v, o and gated-GELU (wi_0, wi_1, wo)
    encoder = model.num_layers * input_length * (dense_per_token + 4 * input_length * inner)
    decoder_per_target = (2 * (4 * d * inner + 2 * d * inner + 3 * d * ff)  # self-attn, cross q/o, FFN
                          + 4 * target_length * inner + 4 * input_length * inner)  # attention scores
    decoder = model.num_decoder_layers * (target_length * decoder_per_target
                                          + input_length * 2 * 2 * d * inner)  # cross k/v on encoder out
    head = target_length * 2 * d * total_vocab
    return 3 * (encoder + decoder + head) / input_length
