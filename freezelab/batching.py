"""How a fine-tune's batches are made and stepped: length-grouped batches and micro-batches.

For: `LengthBuckets`, batches of sentences of similar length in random order (`TrainConfig.group_by_length`),
and `BatchingTrainer`, Hugging Face's `Trainer` with that sampler and with each batch run as micro-batches
of similar length whose gradients are summed (`TrainConfig.micro_batch_size`): the same step in less memory.

Not for: what trains or with which settings (`freezelab.training`, `freezelab.config`).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import Trainer


class LengthBuckets(torch.utils.data.Sampler):
    """Batches of sentences of similar length, in random order: less padding, the same data each epoch.

    Each epoch: shuffle, cut into pools of `pool` batches, sort each pool by length, cut it into batches, and
    shuffle the order of all the batches (the one short batch, if any, goes last so that the DataLoader's
    batches are these). Trainer's own length grouping leaves a pool's batches in order of length; this one
    keeps every batch's place random. Off by default all the same: see `TrainConfig.group_by_length`.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, pool: int = 50):
        self.lengths, self.batch_size, self.seed, self.pool, self.epoch = lengths, batch_size, seed, pool, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.pool * self.batch_size
        batches = []
        for start in range(0, len(order), size):
            pool = sorted(order[start:start + size], key=lambda i: self.lengths[i])
            batches += [pool[i:i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        yield from (i for batch in shuffled + short for i in batch)


class BatchingTrainer(Trainer):
    """Trainer with two additions: `LengthBuckets` as its training sampler when asked (`group_by_length`), and
    each batch run in micro-batches of sentences of similar length when asked (`micro_batch_size`).

    A micro-batched step is the batch's step: the same sentences, their losses weighted by their share of the
    batch and their gradients summed before the optimizer moves. Sorting the batch by length before cutting it
    means each micro-batch pads only to its own longest sentence, so the step costs less time as well as less
    memory. (Trainer's `gradient_accumulation_steps` cuts batches the DataLoader drew, in the order drawn.)
    """

    def __init__(self, *args, length_buckets: "LengthBuckets | None" = None, micro_batch_size: int | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.length_buckets, self.micro_batch_size, self._share = length_buckets, micro_batch_size, 1.0

    def _get_train_sampler(self, train_dataset=None):
        return self.length_buckets or super()._get_train_sampler(train_dataset)

    def training_step(self, model, inputs, num_items_in_batch=None):
        pieces = _micro_batches(inputs, self.micro_batch_size)
        if pieces is None:
            return super().training_step(model, inputs, num_items_in_batch)
        total = 0.0
        with _sparse_embedding_grads(model):
            try:
                for share, piece in pieces:
                    self._share = share
                    total = total + super().training_step(model, piece, num_items_in_batch)
            finally:
                self._share = 1.0
        return total

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                      num_items_in_batch=num_items_in_batch)
        if self._share == 1.0:
            return result
        return (result[0] * self._share, result[1]) if return_outputs else result * self._share


@contextmanager
def _sparse_embedding_grads(model):
    """Trainable embedding tables collect a step's gradient sparse, made dense once after its last micro-batch.

    Dense, each micro-batch's backward fills a table-sized tensor with zeros (MiniLM's word embeddings: 47 MB),
    adds its rows and adds that to the gradient so far; sparse, it keeps only the rows its sentences used. The
    sum is the same up to float rounding (rows are added in another order); the optimizer sees a dense gradient.
    """
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding) and not m.sparse
              and m.weight.requires_grad and m.weight.grad is None]
    for table in tables:
        table.sparse = True
    try:
        yield
    finally:
        for table in tables:
            table.sparse = False
            if table.weight.grad is not None and table.weight.grad.is_sparse:
                table.weight.grad = table.weight.grad.to_dense()


def _micro_batches(inputs: dict, size: int | None):
    """[(share of the batch, inputs of a micro-batch)], the batch sorted by length and cut into `size` sentences,
    each trimmed to its own longest; None where there is nothing to cut (or padding is not on the right)."""
    mask = inputs.get("attention_mask")
    if size is None or mask is None or len(mask) <= size or mask.shape[1] == 1:
        return None  # one micro-batch, or one vector per sentence (every block cached): nothing to trim
    lengths = mask.sum(1)
    width = mask.shape[1]
    if not torch.equal(mask.bool(), torch.arange(width, device=mask.device) < lengths[:, None]):
        return None  # left padding: trimming the right would cut words
    order = lengths.argsort()
    pieces = []
    for chosen in order.split(size):
        longest = int(lengths[chosen].max())
        piece = {}
        for name, value in inputs.items():
            if torch.is_tensor(value) and value.dim() >= 1 and len(value) == len(mask):
                value = value[chosen]
                if value.dim() >= 2 and value.shape[1] == width:
                    value = value[:, :longest]
            piece[name] = value
        pieces.append((len(chosen) / len(mask), piece))
    return pieces
