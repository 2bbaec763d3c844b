"""The training loop: `train(cfg) -> RunResult`, one Accelerate code path for 1 CPU to many GPUs.

`python -m lib.train --config cfg.json` trains one config and stores its result in the run cache;
it runs unchanged under `torchrun --nproc_per_node N` and `accelerate launch`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from accelerate import Accelerator

from lib import quiet
from lib.config import RunConfig
from lib.evaluate import evaluate, references
from lib.models import build_model, initial_dropout, parameter_counts, run_flops_per_input_token, set_dropout
from lib.numerics import check_kernels, cpu_facts, matmul_peak_flops, set_threads
from lib.objectives import IGNORE_INDEX
from lib.corpora import CorpusError
from lib.pack import PackError, data_source
from lib.provenance import environment
from lib.subsets import RepeatedSubset, reference_chunks, validation_set
from lib.tokenizer import PAD_ID
from lib.weights import save_weights


@dataclass
class RunResult:
    config: dict
    curve: list[dict]  # one entry per evaluation: tokens, step, train_loss and the val metrics
    final: dict
    reference: dict  # unigram and bigram references on the same validation targets
    meta: dict

    def to_dict(self) -> dict:
        """Plain JSON values (lists, not tuples): the same value a cache hit returns."""
        return json.loads(json.dumps(asdict(self)))


def eval_steps(total_steps: int) -> list[int]:
    """Dense early (the best point of a heavily repeated run comes early), then every 1/8 of the run."""
    early = [total_steps // 2**k for k in (6, 5, 4)]
    regular = [round(total_steps * i / 8) for i in range(1, 9)]
    return sorted({0, *[s for s in early + regular if 0 < s <= total_steps]})


def checkpoint_steps(total_steps: int) -> set[int]:
    return {round(total_steps * i / 4) for i in (1, 2, 3)} - {0, total_steps}


def learning_rate(step: int, cfg: RunConfig) -> float:
    """Linear warm-up, then cosine decay to final_lr_fraction of the peak, over the run's steps; or
    (schedule "rsqrt", T5's) the peak for the warm-up steps, then decaying as 1 / sqrt(step)."""
    o, total = cfg.optim, cfg.steps
    warmup = max(1, round(total * o.warmup_fraction))
    if o.schedule == "rsqrt":
        return o.lr * min(1.0, math.sqrt(warmup / (step + 1)))
    if step < warmup:
        return o.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return o.lr * (o.final_lr_fraction + (1 - o.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def _optimizer(model, cfg: RunConfig) -> torch.optim.Optimizer:
    """AdamW, weight decay (if any) on matrices only, not on norm scales; or Adafactor as T5 trained
    with it (no momentum, second-moment decay step^-0.8, updates clipped at RMS 1 and scaled by each
    parameter's RMS; the learning rate comes from `learning_rate`)."""
    if cfg.optim.optimizer == "adafactor":
        from transformers.optimization import Adafactor
        return Adafactor(model.parameters(), lr=cfg.optim.lr, eps=(1e-30, 1e-3), clip_threshold=1.0,
                         decay_rate=-0.8, beta1=None, weight_decay=0.0, scale_parameter=True,
                         relative_step=False, warmup_init=False)
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": matrices, "weight_decay": cfg.optim.weight_decay},
              {"params": vectors, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2), eps=1e-8)


def dropout_rate(step: int, cfg: RunConfig) -> float:
    """Dropout from the start, or (late dropout) zero until dropout_start of the run, then on."""
    return cfg.model.dropout if step >= round(cfg.model.dropout_start * cfg.steps) else 0.0


def training_loss(model, inputs: torch.Tensor, targets: torch.Tensor, cfg: RunConfig, pads_inputs: bool):
    """The model's loss plus, for an MoE, the router losses of this forward pass (`router_losses`),
    label-smoothed if configured."""
    from lib.models import router_losses
    extra = {"attention_mask": inputs != PAD_ID} if pads_inputs else {}
    out = model(input_ids=inputs, labels=targets, **extra)
    loss = out.loss + router_losses(model) if cfg.model.num_experts else out.loss
    if not cfg.optim.label_smoothing:
        return loss
    logits, flat = out.logits.float().flatten(0, 1), targets.flatten()
    plain = torch.nn.functional.cross_entropy(logits, flat, ignore_index=IGNORE_INDEX)
    smoothed = torch.nn.functional.cross_entropy(logits, flat, ignore_index=IGNORE_INDEX,
                                                 label_smoothing=cfg.optim.label_smoothing)
    return loss - plain + smoothed


def train(cfg: RunConfig, checkpoint_dir: Path | None = None, progress: bool = True,
          weights_file: Path | None = None) -> RunResult:
    """Train one config from scratch (or from its checkpoint in `checkpoint_dir`) and evaluate it;
    the final weights go to `weights_file` (safetensors) if given."""
    started = time.perf_counter()
    # Precision comes from the run config (autocast below), never from an accelerate config or env.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")
    check_kernels(cfg.kernels, accelerator.device)
    threads = set_threads(cfg.threads, accelerator.num_processes)
    rank, world = accelerator.process_index, accelerator.num_processes
    if cfg.optim.batch_size % world:
        raise ValueError(f"global batch {cfg.optim.batch_size} does not split over {world} processes")
    with accelerator.main_process_first():
        store = data_source(cfg.data)
    data = RepeatedSubset(cfg.data, store, cfg.optim.batch_size, cfg.seed)
    val_inputs, val_targets = validation_set(cfg.data, store, cfg.eval_sequences)
    vocab = store.tokenizer.vocab_size
    model = build_model(cfg.model, store.tokenizer.total_vocab, cfg.seed, cfg.data.input_length)
    counts = parameter_counts(model)
    optimizer = _optimizer(model, cfg)
    model, optimizer = accelerator.prepare(model, optimizer)
    step_model = torch.compile(model) if cfg.compile else model
    eval_model = accelerator.unwrap_model(model)
    autocast = (torch.autocast(accelerator.device.type, dtype=torch.bfloat16)
                if cfg.precision == "bf16" else contextlib.nullcontext())

    state = {"step": 0, "curve": [], "train_loss_sum": 0.0, "train_steps": 0, "train_seconds": 0.0,
             "eval_seconds": 0.0}
    if checkpoint_dir is not None and (checkpoint_dir / "progress.json").exists():
        accelerator.load_state(str(checkpoint_dir / "state"))
        state = json.loads((checkpoint_dir / "progress.json").read_text())

    loss_sum = torch.zeros((), dtype=torch.float64, device=accelerator.device)  # since the last evaluation

    def flush_train_loss() -> None:
        """Move the on-device loss sum into the JSON state (a host sync: only at evaluations and checkpoints)."""
        nonlocal loss_sum
        state["train_loss_sum"] += loss_sum.item()
        loss_sum = torch.zeros_like(loss_sum)

    def record_evaluation(step: int, final: bool = False) -> None:
        t0 = time.perf_counter()
        flush_train_loss()
        train_loss = torch.tensor([state["train_loss_sum"], state["train_steps"]], dtype=torch.float64,
                                  device=accelerator.device)
        train_loss = accelerator.reduce(train_loss, reduction="sum").tolist()
        metrics = evaluate(eval_model, val_inputs, val_targets, vocab, accelerator, encoder_swap=final)
        state["curve"].append({"step": step, "tokens": step * cfg.optim.batch_size * cfg.data.input_length,
                               "train_loss": train_loss[0] / train_loss[1] if train_loss[1] else None,
                               **metrics})
        state["train_loss_sum"], state["train_steps"] = 0.0, 0
        state["eval_seconds"] += time.perf_counter() - t0

    evals, checkpoints = set(eval_steps(cfg.steps)), checkpoint_steps(cfg.steps)
    bar = quiet.bar(show=progress and accelerator.is_main_process, total=cfg.steps, initial=state["step"],
                    desc=f"{cfg.model.name} U={cfg.data.unique_tokens} x{cfg.data.epochs}", leave=False)
    model.train()
    start = state["step"]
    dropout = initial_dropout(cfg.model)
    for step in range(start, cfg.steps):
        if dropout_rate(step, cfg) != dropout:
            dropout = dropout_rate(step, cfg)
            set_dropout(eval_model, dropout)
        if checkpoint_dir is not None and step in checkpoints and step > start:
            flush_train_loss()
            _save_checkpoint(accelerator, checkpoint_dir, state | {"step": step})  # before evaluating
        if step in evals:
            record_evaluation(step)
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        inputs, targets = data.batch(step, rank, world)
        with autocast:
            loss = training_loss(step_model, torch.as_tensor(inputs, device=accelerator.device),
                                 torch.as_tensor(targets, device=accelerator.device), cfg, data.objective.pads_inputs)
        accelerator.backward(loss)
        if cfg.optim.grad_clip:
            accelerator.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach().double()
        state["train_steps"] += 1
        state["train_seconds"] += time.perf_counter() - t0
        bar.update(1)
    bar.close()
    record_evaluation(cfg.steps, final=True)

    curve = state["curve"]
    last = curve[-1]
    tokens = cfg.data.total_tokens
    flops_per_token = run_flops_per_input_token(cfg, store.tokenizer.total_vocab)
    final = {"val_loss": last["val_loss"], "best_val_loss": min(c["val_loss"] for c in curve),
             "val_accuracy": last["val_accuracy"], "best_val_accuracy": max(c["val_accuracy"] for c in curve),
             "val_content_loss": last["val_content_loss"], "val_content_accuracy": last["val_content_accuracy"],
             "best_val_content_loss": min(c["val_content_loss"] for c in curve),
             "val_first_loss": last["val_first_loss"], "val_later_loss": last["val_later_loss"],
             "val_encoder_use": last["val_encoder_use"], "train_loss": last["train_loss"]}
    meta = {**environment(accelerator.device), **counts, "world_size": world, "threads": threads,
            "corpus": store.corpus, "corpus_source": store.source, "corpus_fingerprint": store.fingerprint,
            "tokenizer": store.tokenizer.folder.name, "target_length": data.objective.target_length,
            "flops_per_input_token": flops_per_token, "train_flops": flops_per_token * tokens,
            "wall_seconds": time.perf_counter() - started, "train_seconds": state["train_seconds"],
            "eval_seconds": state["eval_seconds"],
            "tokens_per_second": tokens / max(state["train_seconds"], 1e-9),
            "train_flops_per_second": flops_per_token * tokens / max(state["train_seconds"], 1e-9)}
    if accelerator.device.type == "cuda":
        meta["bf16_matmul_peak_flops"] = matmul_peak_flops(accelerator.device)
        meta["fraction_of_bf16_peak"] = meta["train_flops_per_second"] / meta["bf16_matmul_peak_flops"]
    else:
        meta.update(cpu_facts())
    reference = references(reference_chunks(cfg.data, store), val_inputs, val_targets, vocab)
    final["probe"] = _probe(cfg, eval_model, accelerator, store.corpus, last)
    if weights_file is not None and accelerator.is_main_process:
        save_weights(eval_model, weights_file, cfg.key())
    if checkpoint_dir is not None and accelerator.is_main_process:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return RunResult(cfg.to_dict(), curve, final, reference, meta)


def _probe(cfg: RunConfig, model, accelerator: Accelerator, own_corpus: str, own_metrics: dict) -> dict:
    """Final metrics on the held-out set of every corpus the tokenizer was fitted on (a shared probe)."""
    probe = {own_corpus: {k: own_metrics[k] for k in own_metrics if k.startswith("val_")}}
    for corpus in cfg.data.tokenizer_corpora:
        if corpus not in probe:
            data = replace(cfg.data, corpus=corpus)
            with accelerator.main_process_first():
                store = data_source(data)
            inputs, targets = validation_set(data, store, cfg.eval_sequences)
            probe[corpus] = evaluate(model, inputs, targets, store.tokenizer.vocab_size, accelerator)
    return probe


def _save_checkpoint(accelerator: Accelerator, folder: Path, state: dict) -> None:
    """Model, optimizer and RNG state (safetensors) plus the curve so far; progress.json written last."""
    accelerator.save_state(str(folder / "state"))
    if accelerator.is_main_process:
        tmp = folder / "progress.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, folder / "progress.json")
    accelerator.wait_for_everyone()


def main(argv: list[str] | None = None) -> None:
    from lib import runs

    parser = argparse.ArgumentParser(description="Train one run config and store its result in the cache.")
    parser.add_argument("--config", required=True, type=Path, help="a RunConfig as JSON")
    parser.add_argument("--force", action="store_true", help="retrain even if the result is cached")
    parser.add_argument("--need-weights", action="store_true",
                        help="retrain a cached result whose final weights are not in data_cache/weights/")
    args = parser.parse_args(argv)
    cfg = RunConfig.from_dict(json.loads(args.config.read_text()))
    try:
        runs.run(cfg, allow_train=True, force=args.force, need_weights=args.need_weights)
    except (CorpusError, PackError) as error:  # a data problem: one line that says what to do
        raise SystemExit(f"lib.train: {error}") from None
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"result: {runs.result_path(cfg)}")


if __name__ == "__main__":
    main()
