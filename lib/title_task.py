"""The downstream probe's task: a Wikipedia article's lead paragraph -> the article's title.

Like SQuAD, the answer is a short name that usually appears in the passage (the lead's first words
name the subject), and it is scored with SQuAD's exact match and F1. Examples come from the last
documents of the seeded training-document order of the `wikipedia` corpus: every pre-training
subset is a prefix of that order, and `check_unseen` proves the probe's articles were never
pre-trained on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from lib.config import DataConfig
from lib.corpora import load_corpus
from lib.objectives import IGNORE_INDEX
from lib.subsets import objective_for, training_document_order
from lib.tokenizer import EOS_ID, PAD_ID
from lib.tokens import TokenStore, token_store

CORPUS = "wikipedia"
MIN_LEAD_WORDS = 8
_DISAMBIGUATION = re.compile(r"\s*\([^()]*\)$")  # "Henry V (play)" -> "Henry V"


@dataclass(frozen=True)
class TitleExample:
    lead: str
    title: str


@dataclass(frozen=True)
class TitleTask:
    train: list[TitleExample]
    test: list[TitleExample]
    first_document: int  # position in the training-document order where the probe's articles start
    documents: int  # training documents in that order


def parse_article(text: str) -> TitleExample | None:
    """Title (the first line, without a trailing disambiguation) and lead (the first paragraph of
    at least MIN_LEAD_WORDS words), or None if the article has neither."""
    title, _, body = text.partition("\n")
    title = _DISAMBIGUATION.sub("", title.strip())
    lead = next((line.strip() for line in body.split("\n") if len(line.split()) >= MIN_LEAD_WORDS), None)
    return TitleExample(lead, title) if title and lead else None


def probe_data(data: DataConfig) -> DataConfig:
    """The data config of the task: the run's tokenizer and input length, on the wikipedia corpus."""
    if CORPUS not in data.tokenizer_corpora:
        raise ValueError(f"the title task needs a tokenizer fitted on {CORPUS!r}; this run's tokenizer "
                         f"covers {data.tokenizer_corpora}")
    return replace(data, corpus=CORPUS, objective="span")


def build_task(data: DataConfig, train_examples: int, test_examples: int) -> TitleTask:
    """Train and test examples from the end of the seeded training-document order (test last)."""
    data = probe_data(data)
    store = token_store(data)
    texts = load_corpus(CORPUS, data.max_docs).documents["text"]
    order = training_document_order(store, data.subset_seed)
    examples, position = [], len(order)
    while len(examples) < train_examples + test_examples and position > 0:
        position -= 1
        if (example := parse_article(texts[int(order[position])])) is not None:
            examples.append(example)
    if len(examples) < train_examples + test_examples:
        raise ValueError(f"corpus {CORPUS!r} has {len(examples)} usable articles; the title task asks for "
                         f"{train_examples} + {test_examples} (use fewer, or max_docs=None)")
    return TitleTask(examples[test_examples:], examples[:test_examples], position, len(order))


def pretraining_documents(data: DataConfig, store: TokenStore) -> int:
    """How many documents of the seeded order a pre-training subset of this data config reads."""
    lengths = np.diff(store.offsets)[training_document_order(store, data.subset_seed)]
    needed = data.unique_tokens // data.input_length * objective_for(data, store).raw_length
    return int(np.searchsorted(np.cumsum(lengths), needed)) + 1


def check_unseen(task: TitleTask, pretraining: DataConfig) -> None:
    """Raise if a run pre-trained on wikipedia read any of the probe's articles."""
    if pretraining.corpus != CORPUS:
        return
    read = pretraining_documents(pretraining, token_store(pretraining))
    if read > task.first_document:
        raise ValueError(f"the pre-training subset reads the first {read} wikipedia documents, which overlaps "
                         f"the title task's articles (from position {task.first_document}); use fewer "
                         "probe examples or a smaller unique subset")


def encode(task_examples: list[TitleExample], data: DataConfig, input_length: int,
           target_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs [n, input_length] (lead + EOS, PAD-padded) and targets [n, target_length] (title + EOS,
    ignored past the end), both truncated to fit."""
    processor = token_store(probe_data(data)).tokenizer.processor()
    leads = processor.encode([e.lead for e in task_examples])
    titles = processor.encode([e.title for e in task_examples])
    inputs = np.full((len(task_examples), input_length), PAD_ID, dtype=np.int64)
    targets = np.full((len(task_examples), target_length), IGNORE_INDEX, dtype=np.int64)
    for row, (lead, title) in enumerate(zip(leads, titles)):
        lead, title = lead[:input_length - 1] + [EOS_ID], title[:target_length - 1] + [EOS_ID]
        inputs[row, :len(lead)] = lead
        targets[row, :len(title)] = title
    return inputs, targets


def decode(ids: list[int], processor, vocab_size: int) -> str:
    """Text of generated ids, up to the first EOS; PAD and sentinel ids (>= vocab_size) are dropped."""
    ids = list(ids)
    ids = ids[:ids.index(EOS_ID)] if EOS_ID in ids else ids
    return processor.decode([i for i in ids if PAD_ID < i < vocab_size])


def lead_baseline(lead: str) -> str:
    """A rule with no model: the lead's words before its first verb-like word ("is", "was", ...)
    or its first comma or parenthesis. What the task gives away for free."""
    match = re.search(r"\s(?:is|was|are|were|has|had|refers)\s|,|\(", lead)
    return lead[:match.start()].strip() if match else " ".join(lead.split()[:3])
