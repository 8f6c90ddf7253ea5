"""Where the task head starts: at random (the default), or fitted first as a linear probe (LP-FT).

For: `fit_logistic(x, y)`, a logistic regression fitted to convergence on fixed features (the kit's one
linear probe: `probes.linear_probe` scores with it), and `fit_head(model, tokenizer, texts, labels)`, which
fits the model's own classifier that way on the vectors it reads from the frozen pre-trained body, before
any weight of the body moves. `fine_tune(..., head_start="probe")` calls it: that is LP-FT.

Kumar et al. (2022), "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution",
argue that a randomly started head sends large, arbitrary gradients into the body during the first steps,
and that fitting the head first (a linear probe, "LP"), then fine-tuning everything ("FT"), changes the
pre-trained features less. Whether it buys retention here, on these tasks and this model, is what the
course measures; nothing in this module assumes it does.

Not for: choosing what trains (`freezelab.plans`, `freezelab.methods`) or the probes that read a model
after training (`freezelab.probes`).
"""

from __future__ import annotations

import torch


def fit_logistic(x: torch.Tensor, y, classes: int | None = None, l2: float = 1e-4,
                 start: torch.nn.Linear | None = None) -> torch.nn.Linear:
    """A linear layer fitted by full-batch L-BFGS to the L2-regularised cross-entropy of `y` given `x`.

    The loss is convex, so the probabilities it predicts do not depend on where it starts (`start`, default
    a fixed seed-0 layer; the caller's random state is left as it was).
    """
    y = torch.as_tensor(list(y))
    x = x.float()
    classes = classes or int(y.max()) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        head = torch.nn.Linear(x.shape[1], classes)
    if start is not None:
        head.load_state_dict({k: v.detach().float().cpu() for k, v in start.state_dict().items()})
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def loss():
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(head(x), y) + l2 * head.weight.pow(2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    return head


def head_inputs(model, tokenizer, texts: list[str], batch_size: int = 32, max_length: int = 64) -> torch.Tensor:
    """The vectors the model's classifier reads for `texts`, caught on their way in (no dropout: eval mode).

    Whatever sits before the head (BERT's pooler over [CLS], a mean over tokens) is read as the model has it.
    """
    head = _classifier(model)
    caught, was_training = [], model.training
    hook = head.register_forward_pre_hook(lambda module, args: caught.append(args[0].detach().float().cpu()))
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                  max_length=max_length, return_tensors="pt").to(device)
                model(**batch)
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(caught)


def fit_head(model, tokenizer, texts: list[str], labels, *, max_length: int = 64) -> torch.nn.Linear:
    """Fit `model`'s classifier as a linear probe on the features it reads now (LP-FT's first step), in place.

    The body is not changed. Returns the classifier. A regression head (one output: STS-B) is refused.
    """
    head = _classifier(model)
    if head.out_features < 2:
        raise ValueError("head_start='probe' fits a classification head; this model's head has one output (a "
                         "regression task such as STS-B): use head_start='random'")
    labels = list(labels)
    if not labels:
        raise ValueError("head_start='probe' needs training sentences to fit the head on; got none")
    if max(labels) >= head.out_features or min(labels) < 0:
        raise ValueError(f"labels must be 0 to {head.out_features - 1} for this model's head, "
                         f"got {min(labels)} to {max(labels)}")
    x = head_inputs(model, tokenizer, texts, max_length=max_length)
    fitted = fit_logistic(x, labels, classes=head.out_features, start=head)
    with torch.no_grad():
        head.weight.copy_(fitted.weight.to(head.weight.device, head.weight.dtype))
        head.bias.copy_(fitted.bias.to(head.bias.device, head.bias.dtype))
    return head


def _classifier(model) -> torch.nn.Linear:
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(f"head_start='probe' needs a model whose task head is one linear layer named "
                         f"`classifier` (BERT's ...ForSequenceClassification); {type(model).__name__} has "
                         f"{type(head).__name__ if head is not None else 'none'}")
    return head
