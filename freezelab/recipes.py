"""Popular freezing recipes from two tutorial articles, as printed and as fixed.

For: notebook 02 and the tests. Each `Recipe` re-implements, in our own
words but with the same logic, what a recipe printed in
`shared/reference/` does to a model (`as_printed`, which may crash exactly as
the printed code does), says what the article claims and what really
happens, and gives the corrected `FreezePlan` (`fixed`).

Not for: use in real training code. Use `FreezePlan` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .anatomy import anatomy
from .plans import FreezePlan

ARTICLE_DEFAULTS = "Are Hugging Face BERT pre-trained layers frozen by default?"
ARTICLE_UNFREEZING = "How can Hugging Face sequence classification models benefit from unfreezing layers?"


def _body(model: nn.Module) -> nn.Module:
    # The articles write `model.bert`; this is the same module on BERT and works on any architecture.
    return getattr(model, model.base_model_prefix)


def freeze_body_loop(model):
    """Article 1, example 1: a loop over `model.bert.parameters()` setting requires_grad = False."""
    for p in _body(model).parameters():
        p.requires_grad = False


def freeze_first_eight_layers(model):
    """Article 1, example 2: freeze `encoder.layer[:8]`; nothing else is touched."""
    for p in _body(model).encoder.layer[:8].parameters():
        p.requires_grad = False


def freeze_body_keep_classifier(model):
    """Article 1, example 3: `model.bert.requires_grad_(False)`, then `model.classifier.requires_grad_(True)`."""
    _body(model).requires_grad_(False)
    model.classifier.requires_grad_(True)


def freeze_all_but_classifier(model):
    """Article 2, example 1: freeze every parameter, then unfreeze `model.classifier`."""
    for p in model.parameters():
        p.requires_grad = False
    for p in model.classifier.parameters():
        p.requires_grad = True


def _last_layers(model, first_trained: int, index: int):
    # The printed loop: one if/else over every name; the else freezes all the rest.
    for name, p in model.named_parameters():
        if "encoder.layer" in name and int(name.split(".")[index]) >= first_trained:
            p.requires_grad = True
        else:
            p.requires_grad = False


def unfreeze_last_layers(model):
    """Article 2, example 2, as printed: `int(name.split(".")[2]) >= 10`. Part 2 is the word 'layer': crashes."""
    _last_layers(model, first_trained=10, index=2)


def unfreeze_last_layers_index_fixed(model):
    """Article 2, example 2 with only the index fixed (part 3 is the block number): runs, but the else freezes the head."""
    _last_layers(model, first_trained=10, index=3)


def _progressive(model, until_epoch: int, index: int):
    # The printed schedule's freezing code for epochs 0 ... until_epoch (training calls left out).
    for epoch in range(until_epoch + 1):
        if epoch < 3:
            for name, p in model.named_parameters():
                if "classifier" not in name:
                    p.requires_grad = False
        elif epoch < 6:
            for name, p in model.named_parameters():
                if "encoder.layer" in name and int(name.split(".")[index]) >= 8:
                    p.requires_grad = True
                elif "classifier" not in name:
                    p.requires_grad = False
        else:
            for p in model.parameters():
                p.requires_grad = True


@dataclass(frozen=True)
class Recipe:
    """One printed recipe: where it is from, what it claims, what it really does, and the fix."""

    key: str
    source: str
    claim: str
    verdict: str
    as_printed: Callable[[nn.Module], None]
    fixed: Callable[[nn.Module], FreezePlan]

    def run_as_printed(self, model: nn.Module) -> FreezePlan:
        """Run the printed code on `model` and return what it left frozen (exceptions propagate, as printed)."""
        self.as_printed(model)
        return FreezePlan.from_model(model, name=f"{self.key} (as printed)")


def _recipes() -> dict[str, Recipe]:
    recipes = [
        Recipe(
            "freeze-body-loop", f"{ARTICLE_DEFAULTS} Example 1",
            "Freezes all BERT layers, so only the classifier trains.",
            "Does what it says. The pooler lives inside model.bert, so it is frozen too: the classifier "
            "reads a pooled [CLS] vector that can never adapt (and on MiniLM the pooler was never trained).",
            freeze_body_loop, FreezePlan.head_only,
        ),
        Recipe(
            "freeze-first-8", f"{ARTICLE_DEFAULTS} Example 2",
            "Freezes the first eight layers; the later layers adapt.",
            "Blocks 0-7 are frozen but the embeddings, about a fifth of BERT-base, keep training below the frozen "
            "blocks. On a model with 8 blocks or fewer the slice silently freezes every block and raises nothing.",
            freeze_first_eight_layers, lambda model: FreezePlan.freeze_bottom(model, min(8, _num_blocks(model))),
        ),
        Recipe(
            "requires-grad-body", f"{ARTICLE_DEFAULTS} Example 3",
            "Freezes the whole BERT body except the classifier, as a fixed feature extractor.",
            "Same effect as example 1 on BERT. `model.classifier` is BERT's whole head; on DistilBERT the head "
            "also has `pre_classifier`, which this leaves frozen at its random initial values.",
            freeze_body_keep_classifier, FreezePlan.head_only,
        ),
        Recipe(
            "all-but-classifier", f"{ARTICLE_UNFREEZING} Example 1",
            "Unfreezes only the classification layer.",
            "Correct on BERT. Same DistilBERT caveat as above: `pre_classifier` stays frozen and random.",
            freeze_all_but_classifier, FreezePlan.head_only,
        ),
        Recipe(
            "unfreeze-last-2", f"{ARTICLE_UNFREEZING} Example 2",
            "Unfreezes the last 2 layers (10 and 11) and freezes the rest.",
            "Crashes: in 'bert.encoder.layer.10.attention...' part [2] is the word 'layer', so int() raises "
            "ValueError on the first block parameter.",
            unfreeze_last_layers, lambda model: FreezePlan.train_top(model, min(2, _num_blocks(model))),
        ),
        Recipe(
            "unfreeze-last-2-index-fixed", f"{ARTICLE_UNFREEZING} Example 2, index corrected to [3]",
            "Unfreezes the last 2 layers and freezes the rest.",
            "Runs, but the else branch also freezes the pooler and the randomly initialised classifier, so the "
            "head never learns. The hard-coded 10 assumes 12 blocks: on a 6-block model nothing trains at all.",
            unfreeze_last_layers_index_fixed, lambda model: FreezePlan.train_top(model, min(2, _num_blocks(model))),
        ),
    ]
    phases = [(0, "epochs 0-2", "classifier only", FreezePlan.head_only),
              (3, "epochs 3-5", "the last 4 layers and the classifier",
               lambda model: FreezePlan.train_top(model, min(4, _num_blocks(model)))),
              (6, "epochs 6-9", "everything", FreezePlan.full_finetune)]
    for epoch, label, trains, fixed in phases:
        recipes.append(Recipe(
            f"progressive-{label.replace(' ', '-')}", f"{ARTICLE_UNFREEZING} Example 3, {label}",
            f"Progressive unfreezing: in {label}, {trains} train.",
            {0: "", 3: "Crashes at the start of epoch 3 with example 2's split('.')[2] error. ",
             6: "Never reached as printed: epoch 3 crashes first. "}[epoch] +
            "Beyond the freezing code: the Trainer builds its optimizer once, from the parameters that required "
            "grad at the first train() call (the classifier), so parameters unfrozen later get gradients but are "
            "never updated; each train() call also restarts the learning-rate schedule.",
            (lambda model, e=epoch: _progressive(model, e, index=2)), fixed,
        ))
    return {r.key: r for r in recipes}


def _num_blocks(model) -> int:
    return anatomy(model).num_blocks


def progressive_index_fixed(model, until_epoch: int):
    """Article 2, example 3's freezing code with the index corrected, run for epochs 0 ... until_epoch."""
    _progressive(model, until_epoch, index=3)


RECIPES: dict[str, Recipe] = _recipes()
