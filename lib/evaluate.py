"""Held-out metrics: loss and masked-token accuracy, over all targets and over content tokens only.

"Content" targets exclude sentinels and EOS (28 % of targets, and easy; PILOT.md lesson 2).
A unigram model fitted on the training split is the reference a model must beat.
"""
from __future__ import annotations

import numpy as np
import torch

from lib.tokenizer import EOS_ID


def content_mask(targets: torch.Tensor | np.ndarray, vocab_size: int):
    """True where a target is an ordinary token (not EOS, not a sentinel id >= vocab_size)."""
    return (targets != EOS_ID) & (targets < vocab_size)


@torch.no_grad()
def evaluate(model, inputs: np.ndarray, targets: np.ndarray, vocab_size: int, accelerator,
             batch_size: int = 64) -> dict[str, float]:
    """Teacher-forced metrics on this process's share of the validation set, summed over processes."""
    model.eval()
    rank, world = accelerator.process_index, accelerator.num_processes
    sums = torch.zeros(6, dtype=torch.float64, device=accelerator.device)
    x_all, y_all = inputs[rank::world], targets[rank::world]
    for start in range(0, len(x_all), batch_size):
        x = torch.as_tensor(x_all[start:start + batch_size], device=accelerator.device)
        y = torch.as_tensor(y_all[start:start + batch_size], device=accelerator.device)
        logits = model(input_ids=x, labels=y).logits.float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none")
        correct = logits.argmax(-1) == y
        content = content_mask(y, vocab_size)
        sums += torch.stack([nll.sum(), torch.tensor(float(y.numel()), device=y.device),
                             correct.sum(), nll[content].sum(), content.sum(), correct[content].sum()]).double()
    sums = accelerator.reduce(sums, reduction="sum")
    model.train()
    loss, count, correct, c_loss, c_count, c_correct = sums.tolist()
    return {"val_loss": loss / count, "val_accuracy": correct / count,
            "val_content_loss": c_loss / c_count, "val_content_accuracy": c_correct / c_count}


def unigram_reference(train_tokens: np.ndarray, targets: np.ndarray, vocab_size: int,
                      total_vocab: int) -> dict[str, float]:
    """Loss and accuracy on content targets of a unigram model of the training tokens (add-one)."""
    counts = np.bincount(np.asarray(train_tokens, dtype=np.int64), minlength=total_vocab)[:vocab_size]
    counts[EOS_ID] = 0
    probs = (counts + 1) / (counts + 1).sum()
    content = targets[content_mask(targets, vocab_size)]
    return {"unigram_content_loss": float(-np.log(probs[content]).mean()),
            "majority_content_accuracy": float((content == probs.argmax()).mean())}
