"""Solutions to the notebook exercises: the teacher's, outside the installed package.

For: instructors, and the tests that prove each check in `freezelab.exercises`
accepts these answers (`tests/` and CI's second pass over the notebooks put this
folder on `sys.path`). Not for: students. `pip install freezelab` does not ship
this file, so `import freezelab` gives no way to it.
"""

from freezelab.advisor import validate
from freezelab.anatomy import anatomy, trainable_summary
from freezelab.interpolation import interpolate
from freezelab.models import structure_copy
from freezelab.plans import FreezePlan
from freezelab.recipes import RECIPES
from freezelab.schedules import Phase, Schedule

def _embeddings_training_after_first8(model) -> int:
    model = structure_copy(model)  # leave the caller's model as it was
    RECIPES["freeze-first-8"].run_as_printed(model)
    return int(trainable_summary(model).loc["embeddings", "trainable"])


def _best_kept(frame, probe="sts_spearman") -> str:
    from freezelab.results import summary

    table = summary(frame)
    close = table[table["dev_metric mean"] >= table["dev_metric mean"].max() - 0.02]
    return close.sort_values(f"{probe} mean")["label"].iloc[-1]


def _top_block_cka(frame, label) -> float:
    runs = frame[frame["label"] == label]
    return sum(list(r["cka"].values())[-1] for r in runs["retention"]) / len(runs)  # layers run bottom to top


def _block_size(config) -> int:
    h, f = config.hidden_size, config.intermediate_size
    return 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h  # attention, FFN in, FFN out, 2 LayerNorms


def _tied_depths(frame, size) -> list[int]:
    """The course's spread rule, written out: about equal to the best unless the gap exceeds the larger standard
    deviation by at least one dev answer."""
    from freezelab.results import one_answer

    stats = frame[frame["train_size"] == size].groupby("frozen_blocks")["dev_metric"].agg(["mean", "std"])
    best = stats["mean"].idxmax()
    answer = one_answer(frame)
    top = stats.loc[best, "mean"]  # one seed: no spread, so only exact ties join the best
    return [int(d) for d, row in stats.iterrows() if row["mean"] == top
            or top - row["mean"] < max(row["std"], stats.loc[best, "std"]) + answer]


def _lowest(frame) -> str:
    return frame.groupby("plan")["dev_metric"].mean().idxmin()


def _embeddings_lr(model) -> float:
    rows_above = 1 + anatomy(model).num_blocks  # every block, then the pooler and head share the top rate
    return 3e-4 * 0.9 ** rows_above


def _lora_added(model, rank=8) -> int:
    h, blocks = model.config.hidden_size, model.config.num_hidden_layers
    return 4 * blocks * rank * (h + h)  # query, key, value, attn out: each h x h, so A is r x h and B is h x r


def _query(model) -> str:
    return [n for n in anatomy(model).names_in(row="block 0", column="query") if n.endswith("weight")][0]


SOLUTIONS = {
    "01.block-size": lambda model: _block_size,
    "01.embedding-share": lambda model: float(trainable_summary(model).loc["embeddings", "total"]
                                              / trainable_summary(model).loc["all", "total"]),
    "01.bigger-part": lambda model: "feed-forward",
    "02.top3-pooler-frozen": lambda model: FreezePlan(
        list(FreezePlan.train_top(model, 3).frozen) + ["pooler"]),
    "02.first8-embeddings": lambda model: _embeddings_training_after_first8(model),
    "02.fix-last-2": lambda model: (lambda m: FreezePlan.train_top(m, 2)),
    "03.top3-trainable": lambda model: FreezePlan.train_top(model, 3).trainable_count(model),
    "03.state-saved": lambda model: (sum(p.numel() for p in model.parameters())
                                     - FreezePlan.head_only(model).trainable_count(model)) * 12 / 2**20,
    "04.best-kept": _best_kept,
    "04.top-block-cka": _top_block_cka,
    "05.embeddings-lr": _embeddings_lr,
    "05.phases": lambda model: 1 + anatomy(model).num_blocks,  # head alone, then one block at a time, top down
    "05.two-phases": lambda model: Schedule((Phase(FreezePlan.head_only(model)),
                                             Phase(FreezePlan.train_top(model, 2), start_epoch=1, lr_scale=0.5))),
    "06.best-depth-small": lambda frame: _tied_depths(frame, frame["train_size"].min()),
    "06.best-depth-large": lambda frame: _tied_depths(frame, frame["train_size"].max()),
    "04.order-lowest": _lowest,
    "06.steps-250": lambda: 8 * 8,  # 8 epochs (2,000 / 250) of 8 batches (250 / 32 rounded up)
    "04.pooler-size": lambda model: model.config.hidden_size ** 2 + model.config.hidden_size,  # weight + bias
    "07.lora-added": _lora_added,
    "07.best-kept-method": _best_kept,
    "08.weight-at-0.3": lambda pretrained, finetuned: float(
        dict(interpolate(pretrained, finetuned, 0.3).named_parameters())[_query(pretrained)][0, 0].item()),
    "09.regret": lambda reference: float(
        validate(0.8, table=reference).set_index("task").loc["subj", "full fine-tuning at 2e-5: regret"]),
    "08.floor-alpha": lambda frame, untouched: float(max(a for a, s in zip(frame["alpha"], frame["sts_spearman"])
                                                         if s >= 0.9 * untouched)),
}
