"""Frozen-prefix cache: compute the frozen bottom of the network once per example, train only the rest.

For: speed. When the embeddings and blocks 0 ... k-1 are frozen, their
outputs never change during training, so `fine_tune(..., cache_prefix=True)`
runs them once per sentence, in eval mode (no dropout), and trains blocks
k ... N-1, the pooler and the head from the cached hidden states. When every
block is frozen only the vector the pooler reads is cached (the [CLS] token,
or the mean token vector with `use_mean_pooling`), and training touches the
pooler and classifier alone.

Honest difference: plain `Trainer` keeps dropout on in frozen blocks; the
cache is computed without it (like `frozen_eval_mode=True`).

Reuse across runs: the cached vectors live in one process-wide store, per
sentence, keyed by a hash of the frozen weights (embeddings + blocks 0 ... k-1,
their buffers too), k, what the pooler reads, and the sentence's token ids.
Runs of a grid, or a notebook cell run again, that share the checkpoint, the
frozen prefix and sentences compute each sentence once. The store is bounded
(`MAX_MB`, least recently used sentences go first); `STORE.clear()` or
`freezelab.clear_caches()` empties it.

Not for: plans whose frozen part is not a bottom prefix, schedules that change
the plan, or architectures other than BERT's (a clear error says so).
"""

from __future__ import annotations

import time
from collections import OrderedDict

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import SequenceClassifierOutput

from .anatomy import EMBEDDINGS, anatomy
from .caches import weights_digest
from .heads import MeanPooler
from .methods import Method


def frozen_prefix_depth(model, method: Method) -> int:
    """k such that the method leaves the embeddings and blocks 0 ... k-1 whole and frozen, and something above
    them trains (`Method.frozen_prefix`); an error that says why where there is no such k."""
    a = anatomy(model)
    k = method.frozen_prefix(a)
    if k > 0:
        return k
    frozen, name = method.frozen_names(a), method.name or "this plan"
    training = [n for n in a.names_in(row=EMBEDDINGS) if n not in frozen]
    if training:
        raise ValueError(f"cache_prefix needs the embeddings frozen (the cache starts after them); "
                         f"{name} trains {', '.join(training)}")
    if method.added(a) is None and set(a.names_in(row="block 0")) <= frozen:
        raise ValueError("the plan leaves nothing trainable above the frozen prefix")
    raise ValueError(f"cache_prefix needs a bottom prefix of whole frozen blocks, and {name} trains inside "
                     "block 0: train without cache_prefix, or leave the bottom blocks whole (a plan that freezes "
                     "them; LoRA(..., top=n))")


def _check_bert(model) -> None:
    if not all(hasattr(model, name) for name in ("bert", "classifier", "dropout")):
        raise ValueError(f"cache_prefix supports BERT sequence classifiers (BertForSequenceClassification); "
                         f"got {type(model).__name__}. Train without cache_prefix.")


MAX_MB = 512  # the store's bound; a quick-size notebook needs under 100 MB of it


class Store:
    """Cached hidden states per (frozen prefix, sentence), least recently used evicted past `MAX_MB`."""

    def __init__(self):
        self.rows: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0

    def get(self, key: tuple) -> torch.Tensor | None:
        hidden = self.rows.get(key)
        if hidden is None:
            self.misses += 1
            return None
        self.rows.move_to_end(key)
        self.hits += 1
        return hidden

    def put(self, key: tuple, hidden: torch.Tensor) -> None:
        if key in self.rows:
            return
        self.rows[key] = hidden
        self.bytes += hidden.numel() * hidden.element_size()
        while self.bytes > MAX_MB * 2**20 and len(self.rows) > 1:
            _, old = self.rows.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()

    def clear(self) -> None:
        self.rows.clear()
        self.bytes = self.hits = self.misses = 0

    def __repr__(self) -> str:
        return (f"cache.Store({len(self.rows):,} sentences, {self.bytes / 2**20:,.1f} of {MAX_MB} MiB, "
                f"{self.hits:,} hits, {self.misses:,} misses)")


STORE = Store()


def prefix_key(model, k: int) -> tuple:
    """What the cached vectors depend on: the frozen weights and buffers (hashed), k and what is kept."""
    body = model.bert
    keep_one = k == len(body.encoder.layer)
    return (weights_digest(body.embeddings, *body.encoder.layer[:k]), k,
            keep_one and isinstance(body.pooler, MeanPooler), keep_one,
            getattr(body.config, "_attn_implementation", None), str(next(model.parameters()).dtype))


@torch.no_grad()
def build_cache(model, data, k: int, batch_size: int = 64, store: Store | None = None,
                prefix: tuple | None = None) -> list[dict]:
    """Hidden states after block k-1 for every example of a tokenized dataset (only what the pooler reads when
    k = N). Sentences already in the store (same frozen prefix, same token ids) are not computed again."""
    _check_bert(model)
    store = STORE if store is None else store
    body, was_training = model.bert, model.training
    model.eval()
    device = next(model.parameters()).device
    keep_one = k == len(body.encoder.layer)  # every block frozen: keep only what the pooler reads
    mean_pooled = isinstance(body.pooler, MeanPooler)
    prefix = prefix or prefix_key(model, k)  # hashing the frozen weights is the costly part of a lookup
    columns = data[:]
    pair = "token_type_ids" in columns
    keys = [(prefix, tuple(ids), tuple(columns["token_type_ids"][i]) if pair else ())
            for i, ids in enumerate(columns["input_ids"])]
    found = [store.get(key) for key in keys]
    missing = [i for i, hidden in enumerate(found) if hidden is None]
    # Batches of similar length waste little compute on padding.
    missing.sort(key=lambda i: len(columns["input_ids"][i]))
    for start in range(0, len(missing), batch_size):
        chosen = missing[start:start + batch_size]
        lengths = [len(columns["input_ids"][i]) for i in chosen]
        ids = torch.zeros(len(chosen), max(lengths), dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for row, (i, n) in enumerate(zip(chosen, lengths)):
            ids[row, :n] = torch.tensor(columns["input_ids"][i])
            mask[row, :n] = 1
            if pair:
                types[row, :n] = torch.tensor(columns["token_type_ids"][i])
        ids, types, mask = ids.to(device), types.to(device), mask.to(device)
        hidden = body.embeddings(input_ids=ids, token_type_ids=types)
        attention = create_bidirectional_mask(config=body.config, inputs_embeds=hidden, attention_mask=mask)
        for layer in body.encoder.layer[:k]:
            hidden = layer(hidden, attention)
        if keep_one and mean_pooled:
            hidden = body.pooler.reduce(hidden, mask).unsqueeze(1)
        for row, (i, n) in enumerate(zip(chosen, lengths)):
            found[i] = (hidden[row, :1] if keep_one else hidden[row, :n]).float().cpu().clone()
            store.put(keys[i], found[i])
    model.train(was_training)
    return [{"hidden_states": hidden, "labels": label, "input_ids": ids}  # input_ids: lengths for grouped batches
            for hidden, label, ids in zip(found, columns["label"], columns["input_ids"])]


def collate(rows: list[dict]) -> dict:
    """Pad cached hidden states to the longest in the batch, with the matching attention mask."""
    width = max(r["hidden_states"].shape[0] for r in rows)
    size = rows[0]["hidden_states"].shape[1]
    hidden = torch.zeros(len(rows), width, size)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        n = r["hidden_states"].shape[0]
        hidden[i, :n], mask[i, :n] = r["hidden_states"], 1
    labels = torch.tensor([r["labels"] for r in rows])
    return {"hidden_states": hidden, "attention_mask": mask, "labels": labels}


class CachedSuffix(nn.Module):
    """The trainable top of a BERT classifier, fed from cached hidden states. Holds the whole model."""

    def __init__(self, model, k: int):
        super().__init__()
        _check_bert(model)
        self.model, self.k = model, k
        self.regression = model.config.num_labels == 1

    def forward(self, hidden_states, attention_mask, labels=None):
        body = self.model.bert
        hidden_states = hidden_states.to(next(self.model.parameters()).dtype)
        attention = create_bidirectional_mask(config=body.config, inputs_embeds=hidden_states,
                                              attention_mask=attention_mask)
        for layer in body.encoder.layer[self.k:]:
            hidden_states = layer(hidden_states, attention)
        if isinstance(body.pooler, MeanPooler):
            body.pooler.mask = attention_mask
        pooled = body.pooler(hidden_states) if body.pooler is not None else hidden_states[:, 0]
        logits = self.model.classifier(self.model.dropout(pooled))
        loss = None
        if labels is not None:
            loss = (nn.functional.mse_loss(logits.squeeze(-1), labels.float()) if self.regression
                    else nn.functional.cross_entropy(logits, labels))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def cached_datasets(model, train, dev, k: int) -> tuple[list, list, float]:
    """(train cache, dev cache, seconds spent building or looking them up)."""
    started = time.perf_counter()
    prefix = prefix_key(model, k)  # once for both splits
    return (build_cache(model, train, k, prefix=prefix), build_cache(model, dev, k, prefix=prefix),
            time.perf_counter() - started)
