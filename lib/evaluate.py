"""Held-out metrics and the references a model must beat.

Every evaluation reports loss and masked-token accuracy over all targets and over content tokens
only ("content" excludes sentinels and EOS: about 28 % of targets, and easy). Content loss is also
split by what a prediction can use:

- a span's **first** token: only the encoder can say what is missing (the decoder has just read a
  sentinel), so a model that ignores its encoder predicts it no better than a unigram model;
- a span's **later** tokens: the decoder also sees the previous target.

**Encoder use** is the content loss with each validation sequence's encoder input swapped for the
next sequence's, minus the true content loss: near zero for a model that ignores its encoder.

The references are fitted on a run's training tokens and scored on the same targets: a unigram
model (add-one) and a bigram on each target's left neighbour in the raw text, which a T5 model can
always see (the input token before the span's sentinel for a first token, the previous target for
a later one), with interpolated absolute discounting (discount 0.75, backing off to the unigram;
Chen & Goodman 1999's best simple smoothing).
"""
from __future__ import annotations

import numpy as np
import torch

from lib.tokenizer import EOS_ID

BIGRAM_DISCOUNT = 0.75


def content_mask(targets: torch.Tensor | np.ndarray, vocab_size: int):
    """True where a target is an ordinary token (not EOS, not a sentinel id >= vocab_size)."""
    return (targets != EOS_ID) & (targets < vocab_size)


def target_roles(inputs: np.ndarray, targets: np.ndarray, vocab_size: int) -> dict[str, np.ndarray]:
    """Per target: is it a span's first content token, a later content token, and its left
    neighbour in the raw text (the input token before the span's sentinel, or the previous target)."""
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    content = content_mask(targets, vocab_size)
    after_sentinel = np.zeros_like(content)
    after_sentinel[:, 1:] = targets[:, :-1] >= vocab_size
    first = content & after_sentinel
    left = np.zeros_like(targets)
    left[:, 1:] = targets[:, :-1]
    # The input token before each sentinel, looked up by (row, sentinel id).
    before_sentinel = np.zeros((len(inputs), int(max(inputs.max(), targets.max())) + 1 - vocab_size), inputs.dtype)
    rows, cols = np.nonzero(inputs[:, 1:] >= vocab_size)
    before_sentinel[rows, inputs[rows, cols + 1] - vocab_size] = inputs[rows, cols]
    rows, cols = np.nonzero(first)
    left[rows, cols] = before_sentinel[rows, targets[rows, cols - 1] - vocab_size]
    return {"content": content, "first": first, "later": content & ~first, "left": left}


@torch.no_grad()
def evaluate(model, inputs: np.ndarray, targets: np.ndarray, vocab_size: int, accelerator,
             batch_size: int = 64, encoder_swap: bool = False) -> dict[str, float]:
    """Teacher-forced metrics on this process's share of the validation set, summed over processes;
    with `encoder_swap`, also the encoder-use cost (one more forward pass)."""
    model.eval()
    rank, world = accelerator.process_index, accelerator.num_processes
    roles = target_roles(inputs, targets, vocab_size)
    x_all, y_all = inputs[rank::world], targets[rank::world]
    first_all, later_all = roles["first"][rank::world], roles["later"][rank::world]
    swapped_all = np.roll(x_all, -1, axis=0)  # each sequence reads the next one's encoder input
    sums = torch.zeros(10, dtype=torch.float64, device=accelerator.device)

    def nll_of(x, y):
        logits = model(input_ids=x, labels=y).logits.float()
        return torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none"), logits

    def tensor(a):
        return torch.as_tensor(a, device=accelerator.device)

    for start in range(0, len(x_all), batch_size):
        part = slice(start, start + batch_size)
        x, y, first, later = tensor(x_all[part]), tensor(y_all[part]), tensor(first_all[part]), tensor(later_all[part])
        nll, logits = nll_of(x, y)
        correct = logits.argmax(-1) == y
        content = first | later
        swap = nll_of(tensor(swapped_all[part]), y)[0][content].sum() if encoder_swap else nll.new_zeros(())
        sums += torch.stack([nll.sum(), torch.tensor(float(y.numel()), device=y.device), correct.sum(),
                             nll[content].sum(), content.sum(), correct[content].sum(),
                             nll[first].sum(), first.sum(), nll[later].sum(), swap]).double()
    sums = accelerator.reduce(sums, reduction="sum")
    model.train()
    loss, count, correct, c_loss, c_count, c_correct, f_loss, f_count, l_loss, swap_loss = sums.tolist()
    metrics = {"val_loss": loss / count, "val_accuracy": correct / count,
               "val_content_loss": c_loss / c_count, "val_content_accuracy": c_correct / c_count,
               "val_first_loss": f_loss / f_count, "val_later_loss": l_loss / (c_count - f_count)}
    if encoder_swap:
        metrics["val_encoder_use"] = (swap_loss - c_loss) / c_count
    return metrics


def _unigram_probs(train_tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    counts = np.bincount(np.asarray(train_tokens, dtype=np.int64).ravel(), minlength=vocab_size)[:vocab_size]
    counts[EOS_ID] = 0
    return (counts + 1) / (counts + 1).sum()


def _bigram_probs(train_tokens: np.ndarray, left: np.ndarray, right: np.ndarray, unigram: np.ndarray,
                  vocab_size: int) -> np.ndarray:
    """P(right | left) from the training chunks' adjacent pairs, with interpolated absolute discounting."""
    chunks = np.asarray(train_tokens, dtype=np.int64).reshape(-1, np.shape(train_tokens)[-1])
    pairs = (chunks[:, :-1] * vocab_size + chunks[:, 1:]).ravel()
    pairs = pairs[(chunks[:, :-1] < vocab_size).ravel() & (chunks[:, 1:] < vocab_size).ravel()]
    codes, pair_counts = np.unique(pairs, return_counts=True)
    lefts = codes // vocab_size
    left_totals = np.bincount(lefts, weights=pair_counts, minlength=vocab_size)
    left_types = np.bincount(lefts, minlength=vocab_size)
    query = left.astype(np.int64) * vocab_size + right
    found = np.clip(np.searchsorted(codes, query), 0, len(codes) - 1)
    count = np.where(codes[found] == query, pair_counts[found], 0)
    total, types = left_totals[left], left_types[left]
    seen = total > 0
    safe_total = np.where(seen, total, 1)
    backoff = np.where(seen, BIGRAM_DISCOUNT * types / safe_total, 1.0)
    return np.maximum(count - BIGRAM_DISCOUNT, 0) / safe_total * seen + backoff * unigram[right]


def references(train_tokens: np.ndarray, inputs: np.ndarray, targets: np.ndarray,
               vocab_size: int) -> dict[str, float]:
    """Unigram and bigram content losses (all, first, later) on these targets, fitted on the training
    chunks `train_tokens` ([chunks, raw_length]), and always guessing the most frequent token."""
    roles = target_roles(inputs, targets, vocab_size)
    unigram = _unigram_probs(train_tokens, vocab_size)
    right, left = targets[roles["content"]], roles["left"][roles["content"]]
    first = roles["first"][roles["content"]]
    uni = -np.log(unigram[right])
    bi = -np.log(_bigram_probs(train_tokens, np.where(left < vocab_size, left, 0), right, unigram, vocab_size))
    out = {"majority_content_accuracy": float((right == unigram.argmax()).mean())}
    for name, nll in (("unigram", uni), ("bigram", bi)):
        out.update({f"{name}_content_loss": float(nll.mean()), f"{name}_first_loss": float(nll[first].mean()),
                    f"{name}_later_loss": float(nll[~first].mean())})
    return out
