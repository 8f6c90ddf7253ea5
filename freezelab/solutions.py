"""Solutions to the notebook exercises, kept out of the notebooks' view.

For: instructors, and the tests that prove each check in
`freezelab.exercises` accepts these answers. Not for: students on their first
try (the check cells give hints).
"""

from .anatomy import trainable_summary
from .models import structure_copy
from .plans import FreezePlan
from .recipes import RECIPES

def _embeddings_training_after_first8(model) -> int:
    model = structure_copy(model)  # leave the caller's model as it was
    RECIPES["freeze-first-8"].run_as_printed(model)
    return int(trainable_summary(model).loc["embeddings", "trainable"])


SOLUTIONS = {
    "01.block-size": lambda model: int(trainable_summary(model).loc["block 0", "total"]),
    "01.embedding-share": lambda model: float(trainable_summary(model).loc["embeddings", "total"]
                                              / trainable_summary(model).loc["all", "total"]),
    "01.bigger-part": lambda model: "feed-forward",
    "02.top3-pooler-frozen": lambda model: FreezePlan(
        list(FreezePlan.train_top(model, 3).frozen) + ["pooler"]),
    "02.first8-embeddings": lambda model: _embeddings_training_after_first8(model),
    "02.fix-last-2": lambda model: FreezePlan.train_top(model, 2),
    "03.top2-trainable": lambda model: FreezePlan.train_top(model, 2).trainable_count(model),
    "03.state-saved": lambda model: (sum(p.numel() for p in model.parameters())
                                     - FreezePlan.head_only(model).trainable_count(model)) * 12 / 2**20,
}
