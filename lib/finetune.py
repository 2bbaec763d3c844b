"""The downstream probe: fine-tune a pre-trained checkpoint on the title task and score it like SQuAD.

`probe(cfg)` loads the run's final weights (safetensors), fine-tunes every parameter for a fixed
budget (`FINETUNE[profile]`), then generates titles greedily for held-out articles and scores them
with SQuAD's exact match and F1. `probe(cfg, pretrained=False)` fine-tunes the same architecture
from random initialisation: the floor that pre-training has to beat. Results are cached in
`data_cache/finetune/<key>.json` (committed for the cpu profile, so the book needs no weights).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lib import quiet, squad_score, title_task
from lib.config import RunConfig
from lib.models import build_model, set_dropout
from lib.numerics import set_threads
from lib.objectives import IGNORE_INDEX
from lib.paths import cache_root
from lib.profiles import get_profile
from lib.provenance import environment
from lib.runs import MissingRunsError, allow_train_default, run, write_atomic
from lib.subsets import objective_for
from lib.tokenizer import PAD_ID, Tokenizer
from lib.tokens import token_store
from lib.weights import load_weights, weights_path


@dataclass(frozen=True)
class FinetuneConfig:
    """A fixed fine-tuning budget: AdamW at a constant rate with dropout, as T5 fine-tunes."""

    train_examples: int
    test_examples: int
    steps: int
    batch_size: int
    lr: float = 1e-3
    dropout: float = 0.1
    target_length: int = 16  # title tokens + EOS; generation stops there
    shown_examples: int = 12  # predictions kept in the result for the book


FINETUNE = {
    "smoke": FinetuneConfig(train_examples=96, test_examples=32, steps=12, batch_size=8),
    "cpu": FinetuneConfig(train_examples=4096, test_examples=512, steps=400, batch_size=16),
    "gpu": FinetuneConfig(train_examples=8192, test_examples=1024, steps=2000, batch_size=64),
    "paper": FinetuneConfig(train_examples=8192, test_examples=1024, steps=2000, batch_size=128, lr=1e-4),
}
BUDGET_CHECK_FACTOR = 4  # the budget check fine-tunes this many times longer


def finetune_config(profile: str) -> FinetuneConfig:
    if profile not in FINETUNE:
        raise ValueError(f"no fine-tuning budget for profile {profile!r}; choose from {sorted(FINETUNE)}")
    return FINETUNE[profile]


def probe_key(cfg: RunConfig, ft: FinetuneConfig, pretrained: bool) -> str:
    """A pre-trained probe is keyed by its run; a from-scratch one by what shapes the model and task."""
    if pretrained:
        source = {"run": cfg.key()}
    else:
        data = cfg.data
        source = {"scratch": {"model": asdict(cfg.model), "seed": cfg.seed, "precision": cfg.precision,
                              "tokenizer": [list(data.tokenizer_corpora), data.vocab_size,
                                            data.tokenizer_sample_chars, data.max_docs],
                              "input_length": data.input_length, "subset_seed": data.subset_seed}}
    blob = json.dumps({**source, "finetune": asdict(ft)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def probe_path(key: str) -> Path:
    return cache_root() / "finetune" / f"{key}.json"


def _read_cached(key: str) -> dict | None:
    """The cached result under this key; None if absent, unreadable or written for another key."""
    with contextlib.suppress(OSError, ValueError):
        if (cached := json.loads(probe_path(key).read_text())).get("key") == key:
            return cached
    return None


def probe(cfg: RunConfig, pretrained: bool = True, allow_train: bool | None = None,
          ft: FinetuneConfig | None = None, progress: bool = True) -> dict:
    """The cached probe result of this run (or of its architecture from scratch), else computed now
    if allowed: the run's weights are retrained first when they are not in data_cache/weights/."""
    ft = ft or finetune_config(cfg.profile)
    allow_train = allow_train_default() if allow_train is None else allow_train
    key = probe_key(cfg, ft, pretrained)
    if (cached := _read_cached(key)) is not None:
        return cached
    if not allow_train:
        raise MissingRunsError(f"downstream probe {key} of run {cfg.key()} ({cfg.label}) is not in "
                               f"{probe_path(key).parent}; rerun with allow_train=True or REPEAT_ALLOW_TRAIN=1, "
                               f"or `python -m lib.batch --profile {cfg.profile} --only 13`.")
    if pretrained:
        run(cfg, allow_train=True, progress=progress, need_weights=True)
    result = _finetune_and_score(cfg, ft, pretrained, progress)
    result["key"] = key
    write_atomic(probe_path(key), result)
    return result


def _batches(count: int, batch_size: int, steps: int, seed: int):
    """Example indices for each step: a fresh shuffle per pass over the training examples."""
    rng = np.random.default_rng([seed, 7])
    order = np.concatenate([rng.permutation(count) for _ in range(-(-steps * batch_size // count))])
    return order[:steps * batch_size].reshape(steps, batch_size)


def _finetune_and_score(cfg: RunConfig, ft: FinetuneConfig, pretrained: bool, progress: bool) -> dict:
    started = time.perf_counter()
    set_threads(cfg.threads, 1)  # the run's own thread count (one, on the cpu profile): same numbers anywhere
    task = title_task.build_task(cfg.data, ft.train_examples, ft.test_examples)
    if pretrained:
        title_task.check_unseen(task, cfg.data)
    store = token_store(cfg.data)
    # A UL2 model reads the task behind its R-denoiser mode token, as it reads the common probe.
    to_model_inputs = objective_for(cfg.data, store).eval_inputs if pretrained else (lambda x: x)
    train_x, train_y = title_task.encode(task.train, cfg.data, cfg.data.input_length, ft.target_length)
    test_x, test_y = title_task.encode(task.test, cfg.data, cfg.data.input_length, ft.target_length)
    train_x, test_x = to_model_inputs(train_x), to_model_inputs(test_x)

    model = build_model(cfg.model, store.tokenizer.total_vocab, cfg.seed, cfg.data.input_length)
    if pretrained:
        load_weights(model, weights_path(cfg))
    set_dropout(model, ft.dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=ft.lr, betas=(0.9, 0.98), weight_decay=0.0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if cfg.precision == "bf16" else contextlib.nullcontext()
    model.train()
    losses = []
    for rows in quiet.bar(_batches(len(train_x), ft.batch_size, ft.steps, cfg.seed), show=progress,
                          desc="fine-tuning", leave=False):
        x, y = torch.as_tensor(train_x[rows]), torch.as_tensor(train_y[rows])
        with autocast:
            loss = model(input_ids=x, attention_mask=x != PAD_ID, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    tuned = time.perf_counter()

    predictions, test_loss = _generate(model, test_x, test_y, ft, store.tokenizer)
    references = [[e.title] for e in task.test]
    metrics = {**squad_score.score(predictions, references), "test_loss": test_loss,
               "final_train_loss": float(np.mean(losses[-max(1, ft.steps // 10):]))}
    shown = [{"lead": e.lead[:300], "title": e.title, "prediction": p}
             for e, p in zip(task.test[:ft.shown_examples], predictions)]
    meta = {**environment(torch.device("cpu")), "finetune_seconds": tuned - started,
            "wall_seconds": time.perf_counter() - started, "threads": torch.get_num_threads(),
            "probe_first_document": task.first_document, "probe_documents": task.documents}
    return {"run_key": cfg.key() if pretrained else None, "pretrained": pretrained, "config": cfg.to_dict(),
            "finetune": asdict(ft), "metrics": metrics, "examples": shown, "meta": meta}


@torch.no_grad()
def _generate(model, inputs: np.ndarray, targets: np.ndarray, ft: FinetuneConfig, tokenizer: Tokenizer,
              batch_size: int = 64) -> tuple[list[str], float]:
    """Greedy titles for every test input, and the teacher-forced loss per title token."""
    model.eval()
    processor = tokenizer.processor()
    texts, nll, count = [], 0.0, 0
    for start in range(0, len(inputs), batch_size):
        x = torch.as_tensor(inputs[start:start + batch_size])
        y = torch.as_tensor(targets[start:start + batch_size])
        mask = x != PAD_ID
        logits = model(input_ids=x, attention_mask=mask, labels=y).logits.float()
        nll += torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, ignore_index=IGNORE_INDEX,
                                                 reduction="sum").item()
        count += int((y != IGNORE_INDEX).sum())
        generated = model.generate(input_ids=x, attention_mask=mask, max_new_tokens=ft.target_length,
                                   do_sample=False, num_beams=1, use_cache=True)
        texts += [title_task.decode(row.tolist(), processor, tokenizer.vocab_size) for row in generated]
    return texts, nll / count


def lead_baseline_score(profile: str) -> dict[str, float]:
    """EM/F1 of `title_task.lead_baseline` (no model) on the profile's test articles, cached in
    `data_cache/finetune/` beside the probes (committed for the cpu profile: the book reads no corpus)."""
    ft, p = finetune_config(profile), get_profile(profile)
    data = p.config(p.focus).data
    task_source = {"lead_baseline": {"corpus": title_task.CORPUS, "max_docs": data.max_docs,
                                     "subset_seed": data.subset_seed, "train_examples": ft.train_examples,
                                     "test_examples": ft.test_examples}}
    key = hashlib.sha256(json.dumps(task_source, sort_keys=True).encode()).hexdigest()[:16]
    if (cached := _read_cached(key)) is not None:
        return cached["metrics"]
    task = title_task.build_task(data, ft.train_examples, ft.test_examples)
    metrics = squad_score.score([title_task.lead_baseline(e.lead) for e in task.test], [[e.title] for e in task.test])
    write_atomic(probe_path(key), {"key": key, **task_source, "metrics": metrics})
    return metrics


def budget_check(cfg: RunConfig, allow_train: bool | None = None) -> pd.DataFrame:
    """One checkpoint and its from-scratch floor at the profile's budget and at BUDGET_CHECK_FACTOR
    times as many steps: does pre-training show when fine-tuning runs longer?"""
    ft = finetune_config(cfg.profile)
    rows = []
    for steps in (ft.steps, ft.steps * BUDGET_CHECK_FACTOR):
        for pretrained in (True, False):
            result = probe(cfg, pretrained, allow_train, replace(ft, steps=steps), progress=False)
            rows.append({"fine-tuning steps": steps, "start": "pre-trained" if pretrained else "from scratch",
                         **{name: result["metrics"][metric] for metric, name in
                            (("exact_match", "EM"), ("f1", "F1"), ("test_loss", "title loss"))}})
    return pd.DataFrame(rows).set_index(["fine-tuning steps", "start"])


def probe_table(cfgs: list[RunConfig], allow_train: bool | None = None, progress: bool = True) -> pd.DataFrame:
    """One row per run: its probe metrics, plus the from-scratch probe of the same architecture and seed."""
    rows = []
    for cfg in quiet.bar(cfgs, show=progress, desc="downstream probes"):
        tuned = probe(cfg, allow_train=allow_train, progress=False)
        scratch = probe(cfg, pretrained=False, allow_train=allow_train, progress=False)
        rows.append({"key": cfg.key(), "label": cfg.label, "size": cfg.model.name, "corpus": cfg.data.corpus,
                     "objective": cfg.data.objective, "unique_tokens": cfg.data.unique_tokens,
                     "epochs": cfg.data.epochs, "seed": cfg.seed, **tuned["metrics"],
                     **{f"scratch_{k}": v for k, v in scratch["metrics"].items()}})
    return pd.DataFrame(rows)
