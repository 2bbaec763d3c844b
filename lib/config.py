"""Frozen run configuration and its cache key.

A run is a pure function of its `RunConfig`; `key()` hashes every field that can change the
numbers, so two equal configs share one cached result in `data_cache/runs/<key>.json`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

# Bump when a code change alters the numbers a config produces: old cache entries stop matching.
ENGINE_VERSION = 1

# Fields that label a run but never change its numbers; they are left out of the key.
UNKEYED_FIELDS = ("profile", "label")

# Fields added for the variants of findings 3.5-3.11 (objective, MoE, sharing, regularizers): left
# out of the key while they hold their default, so results cached before they existed keep their keys.
VARIANT_DEFAULTS = {
    "data": {"objective": "span"},
    "model": {"dropout_start": 0.0, "droppath": 0.0, "num_experts": 0, "capacity_factor": 1.25,
              "sparse_step": 2, "layer_repeats": 1, "router_top_k": 1, "eval_capacity_factor": 2.0},
    "optim": {"label_smoothing": 0.0, "optimizer": "adamw", "schedule": "cosine"},
}
# Numerics fields added for the cpu profile's version 2, likewise keyed only when set.
NUMERICS_DEFAULTS = {"threads": 0, "kernels": "default"}
OBJECTIVES = ("span", "ul2")


@dataclass(frozen=True)
class DataConfig:
    """Which tokens a run sees: corpus, tokenizer, unique subset size U and epochs."""

    corpus: str = "web"
    tokenizer_corpora: tuple[str, ...] = ("web", "wikipedia")
    vocab_size: int = 4096  # SentencePiece pieces; 100 T5 sentinels are added on top
    tokenizer_sample_chars: int = 20_000_000  # characters the tokenizer is trained on
    max_docs: int | None = None  # read only the first documents of each corpus (smoke profile)
    unique_tokens: int = 2**22  # U, counted in encoder input tokens, as the paper counts 2^35
    epochs: int = 1  # total tokens T = U * epochs
    subset_seed: int = 0  # the one document order every nested subset is a prefix of
    input_length: int = 128
    noise_density: float = 0.15
    mean_noise_span: float = 3.0
    objective: str = "span"  # "span": T5 span corruption; "ul2": the UL2 mixture of denoisers

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(
                f"epochs must be an integer >= 1 (got {self.epochs!r}): a run repeats its unique "
                "subset a whole number of times; choose unique_tokens = total_tokens / epochs."
            )
        if not isinstance(self.unique_tokens, int) or self.unique_tokens < self.input_length or (
            self.unique_tokens % self.input_length
        ):
            raise ValueError(
                f"unique_tokens must be a positive multiple of input_length={self.input_length} "
                f"(got {self.unique_tokens!r}): subsets are whole encoder sequences."
            )

    @property
    def total_tokens(self) -> int:
        return self.unique_tokens * self.epochs


@dataclass(frozen=True)
class ModelConfig:
    """A T5 v1.1 shape (gated-GELU, untied embeddings), optionally a mixture of experts or layer-shared,
    with its regularizers."""

    name: str
    d_model: int
    num_layers: int  # distinct layers per stack; each is applied layer_repeats times
    num_decoder_layers: int
    num_heads: int
    d_kv: int
    d_ff: int
    dropout: float = 0.0
    dropout_start: float = 0.0  # fraction of training before dropout switches on (late dropout)
    droppath: float = 0.0  # stochastic depth: a residual branch of layer l of L is dropped per sequence
    # with probability droppath * l / L (the last layer of each stack at the full rate)
    num_experts: int = 0  # 0: dense T5 v1.1; >= 1: mixture of gated-GELU experts (lib.models.MoEFeedForward)
    capacity_factor: float = 1.25  # MoE: expert capacity = factor * k * tokens per sequence / experts (training)
    sparse_step: int = 2  # MoE: every sparse_step-th FFN layer is a mixture of experts
    layer_repeats: int = 1  # ALBERT-style sharing: the stack of distinct layers is applied k times
    router_top_k: int = 1  # MoE: experts per token k (1: Switch Transformer's routing, 2: ST-MoE's)
    eval_capacity_factor: float = 2.0  # MoE: the capacity factor in evaluation (ST-MoE's 2.0)

    def __post_init__(self):
        for name in ("dropout", "droppath"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0 <= self.dropout_start < 1:
            raise ValueError(f"dropout_start is a fraction of training in [0, 1), got {self.dropout_start!r}")
        if self.num_experts < 0 or self.layer_repeats < 1:
            raise ValueError("num_experts must be >= 0 and layer_repeats >= 1")
        if not 1 <= self.router_top_k <= max(1, self.num_experts):
            raise ValueError(f"router_top_k must be between 1 and num_experts, got {self.router_top_k!r}")
        if self.capacity_factor <= 0 or self.eval_capacity_factor <= 0:
            raise ValueError("capacity factors must be positive")
        if self.num_experts and self.layer_repeats > 1:
            raise ValueError("layer sharing is implemented for dense models only (num_experts=0)")
        if self.num_experts and not 1 <= self.sparse_step <= min(self.num_layers, self.num_decoder_layers):
            raise ValueError(f"sparse_step must be between 1 (every layer sparse) and the number of layers, so that "
                             f"some layer is sparse (got {self.sparse_step})")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up and cosine decay, defined by total steps (or T5's Adafactor and
    inverse-square-root schedule)."""

    lr: float = 2e-3
    batch_size: int = 32  # global batch in sequences, whatever the number of processes
    warmup_fraction: float = 0.02
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.0  # decoupled (AdamW), on matrices only
    label_smoothing: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 1.0
    optimizer: str = "adamw"  # or "adafactor" (T5's: no momentum, updates scaled by parameter RMS)
    schedule: str = "cosine"  # or "rsqrt": the peak for the warm-up steps, then 1 / sqrt(step)

    def __post_init__(self):
        if self.optimizer not in ("adamw", "adafactor") or self.schedule not in ("cosine", "rsqrt"):
            raise ValueError(f"optimizer must be 'adamw' or 'adafactor' and schedule 'cosine' or 'rsqrt', "
                             f"got {self.optimizer!r}, {self.schedule!r}")


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    model: ModelConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    eval_sequences: int = 256
    precision: str = "fp32"  # "fp32" or "bf16" (autocast in training steps; evaluation is fp32)
    compile: bool = False
    threads: int = 0  # torch threads per process (0: REPEAT_THREADS, else cores / processes)
    kernels: str = "default"  # "avx2": ATen and MKL pinned to AVX2 on CPU (bit-reproducible across CPUs)
    profile: str = "custom"
    label: str = ""

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.kernels not in ("default", "avx2") or self.threads < 0:
            raise ValueError(f"kernels must be 'default' or 'avx2' and threads >= 0, got {self.kernels!r}, "
                             f"{self.threads!r}")
        tokens_per_step = self.optim.batch_size * self.data.input_length
        if self.data.total_tokens % tokens_per_step:
            raise ValueError(
                f"total tokens U*epochs = {self.data.total_tokens} is not a multiple of one step's "
                f"{tokens_per_step} tokens (batch {self.optim.batch_size} x {self.data.input_length})."
            )

    @property
    def steps(self) -> int:
        return self.data.total_tokens // (self.optim.batch_size * self.data.input_length)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        data = dict(d["data"])
        data["tokenizer_corpora"] = tuple(data["tokenizer_corpora"])
        return cls(
            data=DataConfig(**data),
            model=ModelConfig(**d["model"]),
            optim=OptimConfig(**d["optim"]),
            **{k: v for k, v in d.items() if k not in ("data", "model", "optim")},
        )

    def key(self) -> str:
        """Hash of every field that changes results (plus the engine version)."""
        d = self.to_dict()
        for name in UNKEYED_FIELDS:
            d.pop(name)
        for part, defaults in VARIANT_DEFAULTS.items():
            for name, default in defaults.items():
                if d[part][name] == default:
                    d[part].pop(name)
        for name, default in NUMERICS_DEFAULTS.items():
            if d[name] == default:
                d.pop(name)
        blob = json.dumps({"engine": ENGINE_VERSION, "config": d}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **changes) -> "RunConfig":
        """Copy with top-level or nested changes, e.g. replace(seed=1, data__epochs=4)."""
        nested: dict[str, dict] = {}
        top = {}
        for name, value in changes.items():
            if "__" in name:
                part, sub = name.split("__", 1)
                nested.setdefault(part, {})[sub] = value
            else:
                top[name] = value
        for part, subs in nested.items():
            top[part] = dataclasses.replace(getattr(self, part), **subs)
        return dataclasses.replace(self, **top)
