"""Which vector the classifier reads: the [CLS] pooler, or the mean of the token vectors.

For: the fair frozen baseline. BERT's classifier reads the pooler's output,
a dense layer over the [CLS] token. Checkpoints trained for sentence
embeddings (all-MiniLM-L6-v2 among them) were trained with *mean* pooling:
their pooler is in the file but untrained, so a frozen encoder read through
it looks far worse than it is. `use_mean_pooling(model)` swaps the pooler for
mean pooling over the real (non-padding) tokens, which is how such a model
was meant to be read; `load_model(..., pooling="mean")` does it on load.

Not for: training (`freezelab.training`) or any architecture without a
`pooler` attribute on its body (a clear error says so).
"""

from __future__ import annotations

import torch
from torch import nn


class MeanPooler(nn.Module):
    """Mean of the token vectors where the attention mask is 1; no parameters.

    BERT calls its pooler with the hidden states alone, so the attention mask
    of the current batch is handed over by a forward pre-hook on the body
    (`use_mean_pooling` installs it). Without a mask every token counts.
    """

    def __init__(self):
        super().__init__()
        self.mask: torch.Tensor | None = None

    def reduce(self, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            return hidden_states.mean(1)
        weights = mask[:, : hidden_states.shape[1]].unsqueeze(-1).to(hidden_states.dtype)
        return (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        mask, self.mask = self.mask, None  # one batch only: a stale mask must never leak into the next call
        return self.reduce(hidden_states, mask)


def _hand_over_mask(body, args, kwargs):
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1:
        mask = args[1]
    body.pooler.mask = mask


def use_mean_pooling(model) -> nn.Module:
    """Replace the model's [CLS] pooler by mean pooling, in place; returns the model.

    The pooler's weights leave the model (the anatomy grid loses its "pooler"
    row); the classifier then reads the mean token vector. Calling it twice is harmless.
    """
    body = model.base_model
    if not hasattr(body, "pooler"):
        raise ValueError(f"{type(model).__name__} has no pooler to replace; mean pooling is for BERT-style bodies")
    if isinstance(body.pooler, MeanPooler):
        return model
    body.pooler = MeanPooler()
    body.register_forward_pre_hook(_hand_over_mask, with_kwargs=True)
    model.config.freezelab_pooling = "mean"
    return model


def pooling_of(model) -> str:
    """"mean" for a model changed by `use_mean_pooling`, else "cls"."""
    return "mean" if isinstance(getattr(model.base_model, "pooler", None), MeanPooler) else "cls"
