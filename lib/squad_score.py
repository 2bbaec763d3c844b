"""SQuAD v1.1 scoring: exact match and token F1 after the official answer normalisation.

Normalisation lower-cases, removes punctuation and the articles a/an/the, and collapses
whitespace. A prediction is scored against each reference answer and keeps its best score.
"""
from __future__ import annotations

import re
import string
from collections import Counter

_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1(prediction: str, reference: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not expected:  # both empty counts as a match, one empty as a miss
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def score(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """Mean EM and F1 in percent (as SQuAD reports them), each the best over an example's references."""
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"need one non-empty reference list per prediction; got {len(predictions)} "
                         f"predictions and {len(references)} reference lists")
    em = [max(exact_match(p, r) for r in refs) for p, refs in zip(predictions, references)]
    f = [max(f1(p, r) for r in refs) for p, refs in zip(predictions, references)]
    return {"exact_match": 100 * sum(em) / len(em), "f1": 100 * sum(f) / len(f)}
