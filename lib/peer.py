"""The peer for `python -m lib.bench`: a plain `transformers` `Seq2SeqTrainer` on our T5 and our data.

Same model (`lib.models.build_model`, same seed), the very same span-corrupted batches in the same
order (a sequential sampler: step i trains on rows i*batch to (i+1)*batch on both sides), the same
global batch, the same AdamW settings (learning rate, betas, eps, weight decay on the matrices only)
and gradient clipping, and the same learning rate at every step (the Trainer's scheduler is our
`lib.train.learning_rate`). Otherwise the Trainer keeps its defaults: its own AdamW implementation
(`adamw_torch_fused`, where ours is `lib.train._optimizer`'s), no `torch.compile`, and with bf16
precision its own bf16 autocast (`bf16=True`). It runs on the CPU in this process (the thread count
and the pinned kernels are the process's), logs, saves and evaluates nothing, and writes only into a
temporary folder.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from lib.config import RunConfig
from lib.models import build_model
from lib.objectives import SpanCorruption
from lib.train import learning_rate


def span_corrupted(cfg: RunConfig, total_vocab: int, sequences: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`sequences` (inputs, targets) pairs: random token chunks through T5 span corruption."""
    objective = SpanCorruption(cfg.data.input_length, total_vocab, cfg.data.noise_density, cfg.data.mean_noise_span)
    rng = np.random.default_rng(seed)
    raw = rng.integers(3, cfg.data.vocab_size, size=(sequences, objective.raw_length))
    return objective(raw, rng)


class _Rows(torch.utils.data.Dataset):
    def __init__(self, inputs, targets):
        self.inputs, self.targets = torch.as_tensor(inputs), torch.as_tensor(targets)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.inputs[i], "labels": self.targets[i]}


def optimizer_name(optimizer: torch.optim.Optimizer) -> str:
    """The optimizer class and its implementation flags, e.g. 'AdamW (fused)' or 'AdamW (for-loop)'."""
    optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper holds the torch optimizer
    d = optimizer.defaults
    kind = "fused" if d.get("fused") else "foreach" if d.get("foreach") else "for-loop"
    return f"{type(optimizer).__name__} ({kind})"


def build_trainer(cfg: RunConfig, total_vocab: int, inputs, targets, max_steps: int, output_dir: str,
                  callbacks=()):
    """A `Seq2SeqTrainer` on a fresh `build_model(cfg)` that trains `max_steps` steps over `inputs`,
    `targets` in order, with our optimizer settings and learning-rate schedule."""
    from transformers import PrinterCallback, Seq2SeqTrainer, Seq2SeqTrainingArguments

    o = cfg.optim
    if o.optimizer != "adamw":
        raise ValueError(f"the peer compares AdamW runs only, not {o.optimizer!r}")

    class Trainer(Seq2SeqTrainer):
        def get_decay_parameter_names(self, model) -> list[str]:
            """Weight decay on the matrices, as `lib.train._optimizer` (the Trainer's own rule spares any
            name with "bias" in it, so T5's relative_attention_bias tables too)."""
            return [name for name, p in model.named_parameters() if p.ndim >= 2]

        def create_scheduler(self, num_training_steps, optimizer=None):
            """Our schedule, step for step (the Trainer steps its scheduler once per optimizer step)."""
            if self.lr_scheduler is None:
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                    optimizer or self.optimizer, lambda step: learning_rate(step, cfg) / o.lr)
            return self.lr_scheduler

    args = Seq2SeqTrainingArguments(
        output_dir=output_dir, report_to=[], save_strategy="no", logging_strategy="no", eval_strategy="no",
        disable_tqdm=True, use_cpu=True, seed=cfg.seed, train_sampling_strategy="sequential",
        per_device_train_batch_size=o.batch_size, max_steps=max_steps, bf16=cfg.precision == "bf16",
        learning_rate=o.lr, adam_beta1=o.beta1, adam_beta2=o.beta2, adam_epsilon=1e-8,
        weight_decay=o.weight_decay, max_grad_norm=o.grad_clip or 0.0)
    model = build_model(cfg.model, total_vocab, cfg.seed, cfg.data.input_length)
    trainer = Trainer(model=model, args=args, train_dataset=_Rows(inputs, targets), callbacks=list(callbacks))
    trainer.remove_callback(PrinterCallback)  # no end-of-training metrics printed
    return trainer


def trainer_throughput(cfg: RunConfig, total_vocab: int, data: tuple[np.ndarray, np.ndarray], steps: int,
                       warmup: int) -> dict:
    """Input tokens/s of `Seq2SeqTrainer.train()` on `data` (one batch per step, in order), timed over
    the `steps` steps after the first `warmup`; with the torch threads it ran on and its optimizer."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        """Time at the end of every optimizer step (nothing else runs between steps: no logging)."""

        def __init__(self):
            self.ends: list[float] = []
            self.threads = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())
            self.threads = torch.get_num_threads()

    inputs, targets = data
    batch, clock = cfg.optim.batch_size, Clock()
    if len(inputs) < batch * (warmup + steps):
        raise ValueError(f"{len(inputs)} sequences make fewer than {warmup + steps} batches of {batch}")
    with tempfile.TemporaryDirectory(prefix="peer-trainer-") as tmp:
        trainer = build_trainer(cfg, total_vocab, inputs[:batch * (warmup + steps)],
                                targets[:batch * (warmup + steps)], warmup + steps, tmp, [clock])
        trainer.train()
    seconds = (clock.ends[-1] - clock.ends[warmup - 1]) / steps
    return {"tokens_per_s": batch * cfg.data.input_length / seconds, "threads": clock.threads,
            "optimizer": optimizer_name(trainer.optimizer)}
