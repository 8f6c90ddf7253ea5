"""Weight interpolation (WiSE-FT): the models on the straight line from the pre-trained weights to the fine-tuned ones.

For: `interpolate(pretrained, finetuned, alpha, rows=None)`, a plain copy of the fine-tuned model whose
weights are (1 - α) θ_pre + α θ_ft (α = 1: the fine-tuned model; α = 0: the pre-trained body under the
fine-tuned head). `rows` limits the walk to some rows of the anatomy grid (for example the lower blocks);
the other rows keep their fine-tuned weights. The task head is never interpolated: the pre-trained model
has none. Adapters (LoRA, (IA)³) are folded into their matrices first, so every method's runs walk the
same way. `alpha_curve` scores each α on the task and on retention: it costs evaluation only, no training.

Wortsman et al. (2022), "Robust fine-tuning of zero-shot models" (WiSE-FT), interpolate CLIP's zero-shot
and fine-tuned weights and report 4-6 points gained under distribution shift at no extra training cost.
Here the question is the course's: how much retention does a step back towards the pre-trained weights
buy, and at what cost in task accuracy?

Not for: training (`freezelab.training`) or the retention probes themselves (`freezelab.probes`).
"""

from __future__ import annotations

import copy
import numbers

import torch

from .anatomy import HEAD, anatomy
from .methods import merged_state_dict


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number from 0 (pre-trained) to 1 (fine-tuned), got {alpha!r}")
    return float(alpha)


def interpolate(pretrained, finetuned, alpha: float, rows=None):
    """A new model: the fine-tuned one with its non-head weights at (1 - alpha) pre-trained + alpha fine-tuned.

    pretrained: the checkpoint as loaded (`load_model`; its head is ignored). finetuned: the same architecture
    after fine-tuning, with or without adapters. rows: anatomy rows to interpolate ("block 0", "embeddings", ...;
    default: every row but the head); the others keep their fine-tuned weights. Neither model is changed.
    """
    alpha = _check_alpha(alpha)
    layout = anatomy(pretrained)
    if any(p.adapter for p in layout.params):
        raise ValueError("pretrained holds adapters: pass the checkpoint as loaded, before any method was applied")
    body_rows = [r for r in layout.rows if r != HEAD]
    chosen = set(body_rows if rows is None else rows)
    unknown = sorted(chosen - set(body_rows))
    if unknown:
        raise ValueError(f"unknown rows {unknown} (the head is never interpolated); valid: {', '.join(body_rows)}")
    target = merged_state_dict(finetuned)  # plain names, adapters folded in
    start = pretrained.state_dict()
    if set(target) != set(start):
        missing = sorted(set(start) ^ set(target))[:3]
        raise ValueError(f"the two models do not have the same weights (for example {missing}): interpolate a "
                         "fine-tuned model with the checkpoint it started from")
    row_of = {p.name: p.row for p in layout.params}
    walked = {}
    for name, weight in target.items():
        if row_of.get(name) in chosen and weight.is_floating_point():
            walked[name] = torch.lerp(start[name].to(weight.device, weight.dtype), weight.detach(), alpha)
        else:
            walked[name] = weight.detach().clone()
    model = copy.deepcopy(pretrained)
    model.load_state_dict(walked)
    return model.to(next(finetuned.parameters()).device).train(finetuned.training)


def alpha_curve(pretrained, finetuned, tokenizer, data, alphas=(0.0, 0.25, 0.5, 0.75, 1.0), *, rows=None,
                head: str = "keep", sts_dev_size: int | None = None, read: str = "pooler"):
    """Task dev accuracy and STS-B retention at each alpha (a pandas DataFrame, one line per alpha).

    data: the task's splits (`load_task(...)`: "train" and "dev"). head: "keep" scores each interpolated model
    with the fine-tuned head as it is; "refit" fits a linear head to convergence on each model's frozen
    features of the training split (`probes.linear_probe`, reading `read`: "pooler", "cls" or "mean") and
    scores that, which asks what the interpolated features hold rather than whether the old head still reads them.
    """
    import pandas as pd

    from . import probes
    from .sequential import score

    if head not in ("keep", "refit"):
        raise ValueError(f"head must be 'keep' (the fine-tuned head) or 'refit' (a linear head per alpha), got {head!r}")
    lines = []
    for alpha in alphas:
        model = interpolate(pretrained, finetuned, alpha, rows=rows).eval()
        if head == "keep":
            dev = score(model, tokenizer, data["dev"])
        else:
            features = {split: probes.sentence_features(model, tokenizer, data[split]["text"], read)
                        for split in ("train", "dev")}
            dev = probes.linear_probe(features["train"], data["train"]["label"], features["dev"], data["dev"]["label"])
        lines.append({"alpha": float(alpha), "head": head, "dev_metric": dev,
                      "sts_spearman": probes.sts_retention(model, tokenizer, dev_size=sts_dev_size)})
        del model
    return pd.DataFrame(lines)
