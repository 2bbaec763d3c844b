"""Scale profiles: model presets, budgets and execution settings for smoke, cpu, gpu and paper.

The same code runs every profile; only these numbers change.
"""
from __future__ import annotations

from dataclasses import dataclass

from lib.config import DataConfig, ModelConfig, OptimConfig, RunConfig


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    presets: dict[str, ModelConfig]  # smallest to largest
    learning_rates: dict[str, float]  # per size: a larger model needs a smaller rate
    vocab_size: int
    total_tokens: int  # T of the repetition grid
    batch_size: int
    input_length: int
    eval_sequences: int
    precision: str
    compile: bool
    max_docs: int | None = None
    tokenizer_sample_chars: int = 20_000_000
    tokenizer_corpora: tuple[str, ...] = ("web", "wikipedia")
    grid_sizes: tuple[str, ...] = ()  # the three sizes of size-by-repetition grids (default: smallest 3)
    ladder_sizes: tuple[str, ...] = ()  # the sizes of finding 3.1 (default: all)
    focus_size: str = ""  # the one size of single-size designs (3.3, 3.4; default: the second)
    variant_size: str = ""  # the size of the variant designs, findings 3.5-3.11 (default: the smallest)
    variant_tokens: int = 0  # T of the variant designs (default: total_tokens)
    moe_sizes: tuple[str, ...] = ()  # the backbones of finding 3.5 (default: the variant size)
    proxy_sizes: tuple[str, ...] = ()  # finding 3.6's MoE proxies, each against the next dense size (default: the variant size)
    corpus: str = "web"  # the default training corpus ("c4", "wikipedia-hub": a local folder, else the Hub)
    warmup_fraction: float = 0.02
    threads: int = 0  # torch threads per run (0: REPEAT_THREADS, else cores / processes)
    kernels: str = "default"  # "avx2": CPU kernels pinned, so results re-run bit for bit on other CPUs

    @property
    def sizes(self) -> list[str]:
        return list(self.presets)

    @property
    def grid(self) -> list[str]:
        return list(self.grid_sizes or self.sizes[:3])

    @property
    def ladder(self) -> list[str]:
        return list(self.ladder_sizes or self.sizes)

    @property
    def focus(self) -> str:
        return self.focus_size or self.sizes[1]

    @property
    def variant(self) -> str:
        return self.variant_size or self.sizes[0]

    @property
    def moe_backbones(self) -> list[str]:
        return list(self.moe_sizes or [self.variant])

    @property
    def proxy_backbones(self) -> list[str]:
        return list(self.proxy_sizes or [self.variant])

    @property
    def variant_total_tokens(self) -> int:
        return self.variant_tokens or self.total_tokens

    def config(self, size: str, *, unique_tokens: int | None = None, epochs: int = 1,
               corpus: str | None = None, seed: int = 0, label: str = "", **optim) -> RunConfig:
        """The run config for one cell: a model size trained on U unique tokens for some epochs."""
        if size not in self.presets:
            raise ValueError(f"unknown size {size!r} for profile {self.name!r}; choose from {self.sizes}")
        data = DataConfig(
            corpus=corpus or self.corpus,
            tokenizer_corpora=self.tokenizer_corpora,
            vocab_size=self.vocab_size,
            tokenizer_sample_chars=self.tokenizer_sample_chars,
            max_docs=self.max_docs,
            unique_tokens=self.total_tokens if unique_tokens is None else unique_tokens,
            epochs=epochs,
            input_length=self.input_length,
        )
        optim_cfg = OptimConfig(**{"lr": self.learning_rates[size], "batch_size": self.batch_size,
                                   "warmup_fraction": self.warmup_fraction, **optim})
        return RunConfig(data=data, model=self.presets[size], optim=optim_cfg, seed=seed,
                         eval_sequences=self.eval_sequences, precision=self.precision,
                         compile=self.compile, threads=self.threads, kernels=self.kernels,
                         profile=self.name, label=label)


def _t5(name, d_model, layers, heads, d_ff, d_kv=None) -> ModelConfig:
    return ModelConfig(name=name, d_model=d_model, num_layers=layers, num_decoder_layers=layers,
                       num_heads=heads, d_kv=d_kv or d_model // heads, d_ff=d_ff)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CI: every run takes seconds on one CPU core; tiny models on at most 3,000 "
                    "documents of each corpus (tests read the fixture corpus, data/fixtures/).",
        presets={"XS": _t5("XS", 32, 1, 2, 64), "S": _t5("S", 48, 2, 2, 96),
                 "M": _t5("M", 64, 2, 2, 128)},
        learning_rates={"XS": 3e-3, "S": 3e-3, "M": 2e-3},
        vocab_size=512, total_tokens=2**14, batch_size=8, input_length=64, eval_sequences=16,
        precision="fp32", compile=False, max_docs=3000, tokenizer_sample_chars=2_000_000,
        variant_size="S",  # two layers: room for a sparse layer and for sharing half the layers
    ),
    "cpu": Profile(
        name="cpu",
        description="The rendered book (version 2): two CPU cores, fp32 with one thread per run and kernels "
                    "pinned to AVX2 (bit-reproducible on any x86-64 CPU), the recipe the recipe study chose "
                    "(vocabulary 1,000, inputs of 64, batch 64), T = 2^23 tokens; results committed.",
        presets={"XXS": _t5("XXS", 48, 2, 4, 144), "XS": _t5("XS", 64, 2, 4, 192),
                 "S": _t5("S", 128, 2, 4, 384), "M": _t5("M", 192, 3, 6, 576)},
        learning_rates={"XXS": 3e-3, "XS": 3e-3, "S": 3e-3, "M": 1.5e-3},
        grid_sizes=("XXS", "XS", "S"), ladder_sizes=("XXS", "XS", "S", "M"), focus_size="S",
        variant_size="XS", variant_tokens=2**22, moe_sizes=("XXS", "XS"),
        proxy_sizes=("XS", "S"),
        vocab_size=1000, total_tokens=2**23, batch_size=64, input_length=64, eval_sequences=256,
        precision="fp32", compile=False, threads=1, kernels="avx2",
    ),
    "gpu": Profile(
        name="gpu",
        description="One GPU window (an H200 for about 8 minutes): T5 v1.1 shapes at T = 2^24 tokens, "
                    "the cpu profile's tokenizer and corpus, read from a token pack "
                    "(python -m lib.pack build --profile gpu).",
        presets={"XS": _t5("XS", 256, 4, 4, 768, 64), "S": _t5("S", 384, 6, 6, 1024, 64),
                 "M": _t5("M", 512, 8, 8, 1408, 64), "L": _t5("L", 768, 8, 12, 2048, 64)},
        learning_rates={"XS": 2e-3, "S": 1.5e-3, "M": 1e-3, "L": 7e-4},
        grid_sizes=("XS", "S", "M"), ladder_sizes=("XS", "S", "M", "L"), focus_size="S",
        vocab_size=4000, total_tokens=2**24, batch_size=128, input_length=128, eval_sequences=512,
        precision="bf16", compile=False, warmup_fraction=0.05,
    ),
    "paper": Profile(
        name="paper",
        description="The paper's T5.1.1 Base/Large/XL at 2^35 tokens (512 inputs, batch 128): "
                    "configs for clusters, not run here.",
        presets={"Base": _t5("Base", 768, 12, 12, 2048, 64), "Large": _t5("Large", 1024, 24, 16, 2816, 64),
                 "XL": _t5("XL", 2048, 24, 32, 5120, 64)},
        learning_rates={"Base": 1e-4, "Large": 1e-4, "XL": 1e-4},
        vocab_size=32000, total_tokens=2**35, batch_size=128, input_length=512, eval_sequences=4096,
        precision="bf16", compile=True, tokenizer_sample_chars=100_000_000, corpus="c4",
        tokenizer_corpora=("c4", "wikipedia-hub"),
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} "
                         "(smoke for CI, cpu for the book, gpu for one GPU, paper for clusters)")
    return PROFILES[name]
