"""The peer for `python -m lib.bench`: a plain `transformers` `Seq2SeqTrainer` on our T5 and our data.

Same model (`lib.models.build_model`), same span-corrupted sequences, same global batch and the same
optimizer settings as a run config (AdamW, betas, eps, weight decay, gradient clipping, warm-up then
cosine decay to the same floor). Otherwise the Trainer keeps its defaults (its fused AdamW, no
`torch.compile`); with bf16 precision it gets its own bf16 autocast (`bf16=True`). It writes only
into a temporary folder and reports to nothing.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np
import torch
from transformers import PrinterCallback, Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

from lib.config import RunConfig
from lib.models import build_model
from lib.objectives import SpanCorruption


def span_corrupted(cfg: RunConfig, total_vocab: int, sequences: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`sequences` (inputs, targets) pairs: random token chunks through T5 span corruption."""
    objective = SpanCorruption(cfg.data.input_length, total_vocab, cfg.data.noise_density, cfg.data.mean_noise_span)
    rng = np.random.default_rng(seed)
    raw = rng.integers(3, cfg.data.vocab_size, size=(sequences, objective.raw_length))
    return objective(raw, rng)


class _Rows(torch.utils.data.Dataset):
    def __init__(self, inputs: np.ndarray, targets: np.ndarray):
        self.inputs, self.targets = torch.as_tensor(inputs), torch.as_tensor(targets)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.inputs[i], "labels": self.targets[i]}


class _StepClock(TrainerCallback):
    """Time at the end of every optimizer step."""

    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def trainer_tokens_per_s(cfg: RunConfig, total_vocab: int, steps: int, warmup: int = 5) -> float:
    """Input tokens/s of `Seq2SeqTrainer.train()` on `cfg`, timed after `warmup` steps."""
    inputs, targets = span_corrupted(cfg, total_vocab, cfg.optim.batch_size * (warmup + steps))
    o, clock = cfg.optim, _StepClock()
    with tempfile.TemporaryDirectory(prefix="peer-trainer-") as tmp:
        args = Seq2SeqTrainingArguments(
            output_dir=tmp, report_to=[], save_strategy="no", logging_strategy="no", eval_strategy="no",
            disable_tqdm=True, use_cpu=not torch.cuda.is_available(), seed=cfg.seed,
            per_device_train_batch_size=o.batch_size, max_steps=warmup + steps, bf16=cfg.precision == "bf16",
            learning_rate=o.lr, adam_beta1=o.beta1, adam_beta2=o.beta2, adam_epsilon=1e-8,
            weight_decay=o.weight_decay, max_grad_norm=o.grad_clip, warmup_steps=o.warmup_fraction,
            lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": o.final_lr_fraction})
        model = build_model(cfg.model, total_vocab, cfg.seed)
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=_Rows(inputs, targets), callbacks=[clock])
        trainer.remove_callback(PrinterCallback)  # no end-of-training metrics printed
        trainer.train()
    seconds = (clock.ends[-1] - clock.ends[warmup - 1]) / steps
    return o.batch_size * cfg.data.input_length / seconds
