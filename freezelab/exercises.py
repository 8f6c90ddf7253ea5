"""Exercise checks for the notebooks: each compares a student's answer with what the kit computes.

For: the check cells at the end of each notebook (`check("01.block-size",
answer, model=model)` prints right / not yet, with a hint) and the tests that
prove every check accepts the solution and rejects a wrong answer. Expected
answers are computed from the models, never typed in.

Not for: the solutions themselves: they live in the teacher edition
(`teacher/notebooks/`) and the answer key `teacher/solutions.py`, outside the
installed package and the student edition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .anatomy import anatomy, trainable_summary
from .models import structure_copy
from .lora import LoRA
from .plans import FreezePlan
from .recipes import RECIPES
from .results import flatten, gap, summary
from .schedules import Phase, Schedule, layer_distance


@dataclass(frozen=True)
class Exercise:
    key: str
    question: str
    hint: str
    # The right answer, computed from the context (the student's model or results): private and left out of the
    # repr, so the kit's API never hands it out. The kernel computes it, so a student who reads the kit's source
    # can derive it; the grade comes from the teacher edition's hidden tests (nbgrader), not from this check.
    _answer: Callable[..., Any] = field(repr=False)
    compare: Callable[[Any, Any, dict], bool] = field(repr=False)


def _number(answer) -> float | None:
    """A plain number from an int, float, numpy or torch scalar (a 0-d array or tensor too); None otherwise."""
    if isinstance(answer, (bool, str, bytes)):  # True == 1 and "7" parses, but neither is a number
        return None
    try:
        value = float(answer.item() if hasattr(answer, "item") else answer)
    except (TypeError, ValueError, RuntimeError):  # strings, lists, tensors of several numbers
        return None
    return value if math.isfinite(value) else None


def _equal(answer, expected, context) -> bool:
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        value = _number(answer)
        return value is not None and value == expected
    return answer == expected


def _close(tolerance: float):
    def compare(answer, expected, context):
        value = _number(answer)
        return value is not None and abs(value - expected) <= tolerance
    return compare


def _last_two_on_two_architectures(model) -> list:
    """(model, the right plan's frozen names) on the notebook's model and on a second shape: a 4-block BERT of
    another width (meta device: shapes only), so a fix that names "block 10" and "block 11" fails."""
    from transformers import AutoModelForSequenceClassification, BertConfig

    with torch.device("meta"):
        other = AutoModelForSequenceClassification.from_config(
            BertConfig(hidden_size=64, intermediate_size=96, num_attention_heads=2, num_hidden_layers=4))
    return [(m, FreezePlan.train_top(m, 2).frozen_names(m)) for m in (model, other)]


def _same_plan_function(answer, expected, context) -> bool:
    """A function of the model whose plan freezes what the right plan freezes, on every model in `expected`."""
    if not callable(answer) or isinstance(answer, (type, FreezePlan)):
        return False
    for model, frozen in expected:
        try:
            plan = answer(model)
        except Exception as error:  # the student's function: any error is theirs to see
            raise ValueError(f"your function raised {type(error).__name__}: {error}") from None
        if not isinstance(plan, FreezePlan) or plan.frozen_names(model) != frozen:
            return False
    return True


def _same_frozen(answer, expected, context) -> bool:
    return isinstance(answer, FreezePlan) and answer.frozen_names(context["model"]) == expected.frozen_names(context["model"])


def _bigger_part(model) -> str:
    cells = anatomy(model).table().set_index(["row", "column"])["total"]["block 0"]
    attention = cells[["query", "key", "value", "attn out"]].sum()
    return "feed-forward" if cells[["FFN in", "FFN out"]].sum() > attention else "attention"


def _same_part(answer, expected, context) -> bool:
    words = {"feed-forward": {"feed-forward", "feed forward", "ffn", "feedforward"}, "attention": {"attention"}}
    return isinstance(answer, str) and answer.strip().lower() in words[expected]


def _block_sizes(model) -> list[tuple[Any, int]]:
    """One block's parameter count on three architectures: the model's own, BERT-large's shape, and a shape
    whose feed-forward layer is not 4 x the width (so an answer that assumes it fails)."""
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer

    sizes = [(model.config, int(trainable_summary(model).loc["block 0", "total"]))]
    for width, ffn, heads in ((1024, 4096, 16), (256, 1000, 4)):
        config = BertConfig(hidden_size=width, intermediate_size=ffn, num_attention_heads=heads)
        with torch.device("meta"):  # shapes only: no memory, no time
            layer = BertLayer(config)
        sizes.append((config, sum(p.numel() for p in layer.parameters())))
    return sizes


def _same_function(answer, expected, context) -> bool:
    if not callable(answer) or isinstance(answer, type):
        return False
    for config, size in expected:
        try:
            value = _number(answer(config))
        except Exception as error:  # the student's function: any error is theirs to see
            raise ValueError(f"your function raised {type(error).__name__}: {error}") from None
        if value != size:
            return False
    return True


def _embeddings_left_training(model) -> int:
    scratch = structure_copy(model)
    RECIPES["freeze-first-8"].run_as_printed(scratch)
    return sum(p.numel for p in anatomy(scratch).params if p.row == "embeddings"
               and scratch.get_parameter(p.name).requires_grad)


def _embedding_share(model) -> float:
    summary = trainable_summary(model)
    return summary.loc["embeddings", "total"] / summary.loc["all", "total"]


def _best_kept(frame, probe: str = "sts_spearman", margin: float = 0.02) -> frozenset:
    """The set-ups within `margin` of the best accuracy whose retention the seeds cannot tell from the best's."""
    table = summary(frame)
    close = table[table["dev_metric mean"] >= table["dev_metric mean"].max() - margin]
    return _within_spread_of_best(close, "label", metric=probe)


def _one_of(answer, expected, context) -> bool:
    if isinstance(answer, str):
        return answer.strip() in expected
    value = _number(answer)
    return value is not None and value in expected


def _top_block_cka(frame, label: str) -> float:
    runs = flatten(frame)
    if label not in set(runs["label"]):
        raise ValueError(f"no set-up labelled {label!r} in this frame")
    return float(runs.loc[runs["label"] == label, "cka_top"].mean())


def _relative(tolerance: float):
    def compare(answer, expected, context):
        value = _number(answer)
        return value is not None and abs(value - expected) <= tolerance * abs(expected)
    return compare


def _two_phases(model):
    return Schedule((Phase(FreezePlan.head_only(model)),
                     Phase(FreezePlan.train_top(model, 2), start_epoch=1, lr_scale=0.5)))


def _same_schedule(answer, expected, context) -> bool:
    def phases(schedule):  # what a phase does, with the first phase's (unused) start left out
        return [(p.plan.frozen_names(context["model"]), p.lr_scale) + ((p.start_step, p.start_epoch, p.on_plateau)
                                                                       if i else ()) for i, p in enumerate(schedule.phases)]

    return isinstance(answer, Schedule) and phases(answer) == phases(expected)


def _within_spread_of_best(table, key: str, metric: str = "dev_metric") -> frozenset:
    """Every `key` that the course's spread rule (`results.SPREAD_RULE`) finds about equal to the best (one seed:
    no spread, so only exact ties)."""
    rows = table.set_index(key)
    rows.attrs = table.attrs  # the settings say what one dev answer is worth
    mean = rows[f"{metric} mean"]
    best = mean.idxmax()
    return frozenset(k for k in rows.index
                     if mean[k] == mean[best] or gap(rows, best, k, metric).outcome == "about equal")


def _tied_depths(frame, size: str) -> frozenset:
    table = summary(frame, by=("frozen_blocks", "train_size"), metrics=("dev_metric",))
    wanted = table["train_size"].min() if size == "smallest" else table["train_size"].max()
    return frozenset(int(depth) for depth in _within_spread_of_best(
        table[table["train_size"] == wanted].reset_index(drop=True), "frozen_blocks"))


def _same_numbers(answer, expected, context) -> bool:
    """A list, tuple or set of numbers (in any scalar form) equal to `expected` as a set; one number where
    exactly one is expected."""
    items = list(answer) if isinstance(answer, (list, tuple, set, frozenset, np.ndarray)) else [answer]
    values = [_number(a) for a in items]
    return None not in values and set(values) == set(expected)


def _lowest(frame) -> frozenset:
    """The set-ups whose mean dev accuracy the seeds cannot tell from the lowest one's, named by label or by
    plan ("head", "top2", "full")."""
    table = summary(frame, metrics=("dev_metric",))
    flipped = table.assign(**{"dev_metric mean": -table["dev_metric mean"]})
    labels = _within_spread_of_best(flipped, "label")
    return labels | frozenset(table.loc[table["label"].isin(labels), "plan"])


def _steps(size: int = 250, batch_size: int = 32, examples: int = 2000) -> int:
    """The data-size grid's rule (`grids.data_size_points`): at least 2 epochs and `examples` examples seen."""
    epochs = max(2, math.ceil(examples / size))
    return epochs * -(-size // batch_size)


def _top3_pooler_frozen(model) -> FreezePlan:
    a = anatomy(model)
    rows = ["embeddings", "pooler"] + [f"block {i}" for i in range(a.num_blocks - 3)]
    return FreezePlan.from_names(a, {n for r in rows for n in a.names_in(row=r)})


def _first_query_weight(model) -> str:
    """The name of block 0's query matrix (notebook 08 prints its first number before and after fine-tuning)."""
    return next(n for n in anatomy(model).names_in(row="block 0", column="query") if n.endswith("weight"))


def _weight_at(pretrained, finetuned, alpha: float = 0.3) -> float:
    name = _first_query_weight(pretrained)
    start, end = (dict(m.named_parameters())[name][0, 0].item() for m in (pretrained, finetuned))
    return (1 - alpha) * start + alpha * end


def _largest_alpha_above(frame, untouched: float, share: float = 0.9) -> float:
    """The largest alpha of an alpha-curve whose STS-B Spearman is at least `share` of the untouched model's."""
    return float(frame.loc[frame["sts_spearman"] >= share * untouched, "alpha"].max())


def _regret(reference, task: str = "subj", setup: str = "full fine-tune, lr 2e-05", floor: float = 0.8) -> float:
    """The advisor's regret of `setup` on `task` (`advisor.validate`): the best score among the set-ups that keep
    `floor` of STS-B, minus the set-up's, in the task's seed standard deviation pooled over set-ups."""
    rows = reference[reference["task"] == task]
    best = rows.loc[rows["retention"] >= floor, "score"].max()
    return float((best - rows.loc[rows["setup"] == setup, "score"].iloc[0]) / math.sqrt(rows["score_var"].mean()))


EXERCISES = {e.key: e for e in [
    Exercise("01.block-size", "Write a function of a BERT config that returns the parameters of one block.",
             "Use config.hidden_size (h) and config.intermediate_size (f): query, key, value and attention output "
             "are each an h x h weight and an h bias; the feed-forward layer is h x f + f in and f x h + h out; two "
             "LayerNorms hold 2 x h each. The check tries three shapes, one whose f is not 4 x h.",
             _block_sizes, _same_function),
    Exercise("01.embedding-share", "What share (0 to 1) of the pretrained checkpoint's parameters sit in its embeddings?",
             "Divide the 'embeddings' total by the 'all' total; within 0.01 counts.",
             _embedding_share, _close(0.01)),
    Exercise("01.bigger-part", "Which part of a block holds more parameters: 'attention' or 'feed-forward'?",
             "Add up query, key, value and attn out, then FFN in and FFN out, in one block's cells of "
             "fl.parameter_grid(model).", _bigger_part, _same_part),
    Exercise("02.top3-pooler-frozen",
             "Write a FreezePlan that trains the top 3 blocks and the head, with the pooler frozen.",
             "Start from FreezePlan.train_top(model, 3) and add 'pooler' to what is frozen, or list the rows.",
             _top3_pooler_frozen, _same_frozen),
    Exercise("02.first8-embeddings",
             "After 'freeze-first-8' as printed, how many embedding parameters of bert-base still train?",
             "Run the recipe on a fresh model and read the 'embeddings' line of fl.trainable_summary.",
             _embeddings_left_training, _equal),
    Exercise("02.fix-last-2", "Fix article 2's example 2 for any model: a function of the model that returns a plan "
             "training the last 2 blocks, the pooler (if any) and the head.",
             "def fix(model): return ... ; a named constructor of FreezePlan takes the model and counts its blocks. "
             "The check calls your function on this model and on a 4-block BERT of another width.",
             _last_two_on_two_architectures, _same_plan_function),
    Exercise("03.top3-trainable", "How many parameters does 'train top 3 + head' train on this notebook's model?",
             "Three blocks (one block's size from notebook 01, times 3), plus the pooler (h x h + h) and the head "
             "(h x 2 + 2); or fl.FreezePlan.train_top(model, 3).trainable_count(model).",
             lambda model: FreezePlan.train_top(model, 3).trainable_count(model), _equal),
    Exercise("03.state-saved",
             "How many MiB of gradients + AdamW state does 'head only' save against full fine-tuning on this model?",
             "12 bytes per trainable parameter (a gradient and two AdamW moments, 4 bytes each); "
             "1 MiB = 2**20 bytes; within 1 MiB counts.",
             lambda model: (FreezePlan.full_finetune(model).trainable_count(model)
                            - FreezePlan.head_only(model).trainable_count(model)) * 12 / 2**20, _close(1.0)),
    Exercise("04.best-kept",
             "Among the set-ups within 0.02 of the best mean dev accuracy, which keeps the most retention?",
             "In `table`, keep the rows whose 'dev_metric mean' is at least the largest one minus 0.02, then look for "
             "the largest mean of the retention probe (PROBE + ' mean'); any row within the seed spread of it "
             "counts. Answer its 'label' exactly.",
             _best_kept, _one_of),
    Exercise("04.top-block-cka", "Mean CKA of the top block after the fastest full fine-tune with warm-up, over its seeds?",
             "results.flatten(reference) has a 'cka_top' column; average it over the rows whose label is `fast`; "
             "within 0.02 counts.", _top_block_cka, _close(0.02)),
    Exercise("04.pooler-size", "How many parameters does this checkpoint's pooler hold?",
             "A square weight matrix, hidden size x hidden size, plus a bias of hidden size; or read the 'pooler' "
             "line of fl.trainable_summary(model).",
             lambda model: int(trainable_summary(model).loc["pooler", "total"]), _equal),
    Exercise("05.embeddings-lr", "With lr 3e-4 and layer_decay 0.9, what lr do this model's embeddings get?",
             "lr x 0.9 ** distance, where the distance counts rows down from the head (head 0, top block 1, ...); "
             "freezelab.schedules.layer_distance(fl.anatomy(model), 'embeddings') gives it. Within 1% counts.",
             lambda model: 3e-4 * 0.9 ** layer_distance(anatomy(model), "embeddings"), _relative(0.01)),
    Exercise("05.phases", "How many phases does Schedule.gradual_unfreezing(model) have on this model?",
             "One phase with the head (and pooler) alone, then one per block; or count len(schedule.phases).",
             lambda model: len(Schedule.gradual_unfreezing(model).phases), _equal),
    Exercise("05.two-phases", "Write a Schedule: head only for epoch 0, then top 2 + head from epoch 1 at lr_scale 0.5.",
             "Two Phase objects in a Schedule: the first with FreezePlan.head_only(model) (it needs no start), the "
             "second with FreezePlan.train_top(model, 2) and the start_epoch and lr_scale asked for.",
             _two_phases, _same_schedule),
    Exercise("06.best-depth-small",
             "At the smallest size, which depths can the seeds not tell from the best one? (a list of frozen blocks)",
             "results.summary(sizes, by=('frozen_blocks', 'train_size'), metrics=('dev_metric',)) gives the mean and "
             "std per depth; keep the smallest train_size, find the best depth, and list every depth that "
             "results.gap(table, best, depth).outcome calls 'about equal' (the course's spread rule, "
             "results.SPREAD_RULE). The best depth itself belongs to the list.",
             lambda frame: _tied_depths(frame, "smallest"), _same_numbers),
    Exercise("06.best-depth-large",
             "At the largest size, which depths can the seeds not tell from the best one? (a list of frozen blocks)",
             "As in exercise 1, at the largest train_size.",
             lambda frame: _tied_depths(frame, "largest"), _same_numbers),
    Exercise("04.order-lowest",
             "Which set-up of the word-order grid ends with the lowest dev accuracy? ('head', 'top2' or 'full')",
             "Read the word-order table (order_table): the lowest 'task dev accuracy'. Where the seeds cannot tell "
             "two set-ups apart, either counts.",
             _lowest, _one_of),
    Exercise("07.lora-added",
             "How many parameters does LoRA of rank 8 on the attention matrices (query, key, value, attn out) add?",
             "Each adapted matrix W (out x in) gets A (8 x in) and B (out x 8): 8 x (in + out) numbers. Four matrices "
             "per block, every block; the head is not an adapter. LoRA(8).added(model).sum() counts them for you.",
             lambda model: int(LoRA(8).added(model).sum()), _equal),
    Exercise("07.best-kept-method",
             "Among the methods within 0.02 of the best mean dev accuracy, which keeps the most retention?",
             "As in notebook 04: in results.summary(methods), keep the rows whose 'dev_metric mean' is at least the "
             "largest minus 0.02 and find the largest retention mean; any row within the seed spread of it counts.",
             _best_kept, _one_of),
    Exercise("08.weight-at-0.3",
             "What is the first number of block 0's query matrix at alpha = 0.3?",
             "Each weight becomes (1 - alpha) x its pre-trained value + alpha x its fine-tuned value: at 0.3 it is "
             "still mostly the pre-trained one. Use the two numbers printed above.",
             _weight_at, _close(2e-6)),
    Exercise("08.floor-alpha",
             "Which is the largest alpha of the curve whose STS-B is at least 90% of the untouched model's?",
             "Keep the rows of `curve` whose sts_spearman is at least 0.9 x untouched (not 90% of the fine-tuned "
             "model's), then take the largest alpha among them.",
             _largest_alpha_above, _close(1e-9)),
    Exercise("09.regret",
             "What is full fine-tuning at 2e-5's regret on SUBJ at the 80% floor, in seed standard deviations?",
             "Keep SUBJ's rows of `reference` whose retention is at least 0.8 and take their largest score (the "
             "floor first, then the best); subtract full fine-tuning at 2e-5's score; divide by the square root of "
             "the mean of SUBJ's score_var over all its set-ups (not that set-up's own). Within 0.01 counts.",
             _regret, _close(0.01)),
    Exercise("06.steps-250", "How many optimizer steps would a 250-sentence run take under the grid's rule?",
             "epochs = max(2, ceil(2000 / 250)); steps per epoch = ceil(250 / 32); multiply.", _steps, _equal),
]}


def check(key: str, answer: Any, **context) -> bool:
    """Print whether `answer` is right (with a hint if not) and return True/False."""
    if key not in EXERCISES:
        raise ValueError(f"unknown exercise {key!r}; exercises: {', '.join(EXERCISES)}")
    exercise = EXERCISES[key]
    if answer is None or answer is ...:
        print(f"⏳ {key}: not answered yet. {exercise.question}")
        return False
    try:
        right = bool(exercise.compare(answer, exercise._answer(**context), context))
    except ValueError as error:  # e.g. a plan with an unknown row
        print(f"❌ {key}: that answer raised an error: {error}")
        return False
    print(f"✅ {key}: right!" if right else f"❌ {key}: not yet. Hint: {exercise.hint}")
    return right
