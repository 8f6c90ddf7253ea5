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

Not for: plans whose frozen part is not a bottom prefix, schedules that change
the plan, or architectures other than BERT's (a clear error says so).
"""

from __future__ import annotations

import time

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import SequenceClassifierOutput

from .anatomy import EMBEDDINGS, anatomy
from .heads import MeanPooler
from .plans import FreezePlan


def frozen_prefix_depth(model, plan: FreezePlan) -> int:
    """k such that the plan freezes the embeddings and blocks 0 ... k-1 entirely (and something above trains)."""
    a = anatomy(model)
    frozen = plan.frozen_names(a)
    if not set(a.names_in(row=EMBEDDINGS)) <= frozen:
        raise ValueError("cache_prefix needs the embeddings frozen: the cache starts after them")
    k = 0
    while k < a.num_blocks and set(a.names_in(row=f"block {k}")) <= frozen:
        k += 1
    prefix_rows = {EMBEDDINGS} | {f"block {i}" for i in range(k)}
    if all(p.name in frozen for p in a.params if p.row not in prefix_rows):
        raise ValueError("the plan leaves nothing trainable above the frozen prefix")
    return k


def _check_bert(model) -> None:
    if not all(hasattr(model, name) for name in ("bert", "classifier", "dropout")):
        raise ValueError(f"cache_prefix supports BERT sequence classifiers (BertForSequenceClassification); "
                         f"got {type(model).__name__}. Train without cache_prefix.")


@torch.no_grad()
def build_cache(model, data, k: int, batch_size: int = 64) -> list[dict]:
    """Hidden states after block k-1 for every example of a tokenized dataset (only [CLS] when k = N)."""
    _check_bert(model)
    body, was_training = model.bert, model.training
    model.eval()
    device = next(model.parameters()).device
    keep_one = k == len(body.encoder.layer)  # every block frozen: keep only what the pooler reads
    mean_pooled = isinstance(body.pooler, MeanPooler)
    # Batches of similar length waste little compute on padding; rows go back to data order at the end.
    order = sorted(range(len(data)), key=lambda i: len(data[i]["input_ids"]))
    rows = [None] * len(data)
    for start in range(0, len(data), batch_size):
        chosen = order[start:start + batch_size]
        batch = data.select(chosen)[:]
        lengths = [len(ids) for ids in batch["input_ids"]]
        width = max(lengths)
        ids = torch.zeros(len(lengths), width, dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for i, n in enumerate(lengths):
            ids[i, :n] = torch.tensor(batch["input_ids"][i])
            mask[i, :n] = 1
            if "token_type_ids" in batch:
                types[i, :n] = torch.tensor(batch["token_type_ids"][i])
        ids, types, mask = ids.to(device), types.to(device), mask.to(device)
        hidden = body.embeddings(input_ids=ids, token_type_ids=types)
        attention = create_bidirectional_mask(config=body.config, inputs_embeds=hidden, attention_mask=mask)
        for layer in body.encoder.layer[:k]:
            hidden = layer(hidden, attention)
        if keep_one and mean_pooled:
            hidden = body.pooler.reduce(hidden, mask).unsqueeze(1)
        for i, n in enumerate(lengths):
            kept = hidden[i, :1] if keep_one else hidden[i, :n]
            rows[chosen[i]] = {"hidden_states": kept.float().cpu().clone(), "labels": batch["label"][i]}
    model.train(was_training)
    return rows


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
    """(train cache, dev cache, seconds spent building them)."""
    started = time.perf_counter()
    return build_cache(model, train, k), build_cache(model, dev, k), time.perf_counter() - started
