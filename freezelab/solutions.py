"""Solutions to the notebook exercises, kept out of the notebooks' view.

For: instructors, and the tests that prove each check in
`freezelab.exercises` accepts these answers. Not for: students on their first
try (the check cells give hints).
"""

from .anatomy import trainable_summary
from .models import structure_copy
from .plans import FreezePlan
from .recipes import RECIPES
from .schedules import Phase, Schedule

def _embeddings_training_after_first8(model) -> int:
    model = structure_copy(model)  # leave the caller's model as it was
    RECIPES["freeze-first-8"].run_as_printed(model)
    return int(trainable_summary(model).loc["embeddings", "trainable"])


def _best_kept(frame) -> str:
    from .results import summary

    table = summary(frame)
    return table[table["dev_metric mean"] >= 0.80].sort_values("sts_spearman mean")["label"].iloc[-1]


def _top_block_cka(frame) -> float:
    runs = frame[frame["label"] == "full fine-tune, lr 0.0005"]
    return sum(r["cka"]["block 5"] for r in runs["retention"]) / len(runs)


def _best_depth(frame, size) -> int:
    runs = frame[frame["train_size"] == size]
    return int(runs.groupby("frozen_blocks")["dev_metric"].mean().idxmax())


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
    "04.best-kept": lambda frame: _best_kept(frame),
    "04.top-block-cka": lambda frame: _top_block_cka(frame),
    "05.embeddings-lr": lambda model: 1e-4 * 0.8 ** 7,  # embeddings sit 6 blocks + 1 below the head
    "05.phases": lambda model: 7,  # head alone, then blocks 5, 4, 3, 2, 1, 0 one at a time
    "05.two-phases": lambda model: Schedule((Phase(FreezePlan.head_only(model)),
                                             Phase(FreezePlan.train_top(model, 2), start_epoch=1, lr_scale=0.5))),
    "06.best-depth-small": lambda frame: _best_depth(frame, 100),
    "06.best-depth-large": lambda frame: _best_depth(frame, 3000),
    "06.steps-300": lambda: 7 * 10,  # 7 epochs (2,000 / 300 rounded up) of 10 batches (300 / 32 rounded up)
    "04.pooler-size": lambda model: model.bert.pooler.dense.weight.numel() + model.bert.pooler.dense.bias.numel(),
}
