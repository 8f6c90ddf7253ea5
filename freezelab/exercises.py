"""Exercise checks for the notebooks: each compares a student's answer with what the kit computes.

For: the check cells at the end of each notebook (`check("01.block-size",
answer, model=model)` prints right / not yet, with a hint) and the tests that
prove every check accepts the solution and rejects a wrong answer. Expected
answers are computed from the models, never typed in.

Not for: the solutions themselves (`freezelab.solutions`, kept out of the
notebooks' view).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .anatomy import anatomy, trainable_summary
from .models import structure_copy
from .plans import FreezePlan
from .recipes import RECIPES


@dataclass(frozen=True)
class Exercise:
    key: str
    question: str
    hint: str
    expected: Callable[..., Any]  # the right answer, computed from the context (models)
    compare: Callable[[Any, Any, dict], bool]


def _equal(answer, expected, context) -> bool:
    return answer == expected


def _close(tolerance: float):
    return lambda answer, expected, context: isinstance(answer, (int, float)) and abs(answer - expected) <= tolerance


def _same_frozen(answer, expected, context) -> bool:
    return isinstance(answer, FreezePlan) and answer.frozen_names(context["model"]) == expected.frozen_names(context["model"])


def _bigger_part(model) -> str:
    cells = anatomy(model).table().set_index(["row", "column"])["total"]["block 0"]
    attention = cells[["query", "key", "value", "attn out"]].sum()
    return "feed-forward" if cells[["FFN in", "FFN out"]].sum() > attention else "attention"


def _same_part(answer, expected, context) -> bool:
    words = {"feed-forward": {"feed-forward", "feed forward", "ffn", "feedforward"}, "attention": {"attention"}}
    return isinstance(answer, str) and answer.strip().lower() in words[expected]


def _embeddings_left_training(model) -> int:
    scratch = structure_copy(model)
    RECIPES["freeze-first-8"].run_as_printed(scratch)
    return sum(p.numel for p in anatomy(scratch).params if p.row == "embeddings"
               and scratch.get_parameter(p.name).requires_grad)


def _embedding_share(model) -> float:
    summary = trainable_summary(model)
    return summary.loc["embeddings", "total"] / summary.loc["all", "total"]


def _top3_pooler_frozen(model) -> FreezePlan:
    a = anatomy(model)
    rows = ["embeddings", "pooler"] + [f"block {i}" for i in range(a.num_blocks - 3)]
    return FreezePlan.from_names(a, {n for r in rows for n in a.names_in(row=r)})


EXERCISES = {e.key: e for e in [
    Exercise("01.block-size", "How many parameters does one transformer block of bert-base hold?",
             "Read one 'block' line of fl.trainable_summary(model).",
             lambda model: int(trainable_summary(model).loc["block 0", "total"]), _equal),
    Exercise("01.embedding-share", "What share (0 to 1) of MiniLM-L6's parameters sit in its embeddings?",
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
    Exercise("02.fix-last-2", "Fix article 2's example 2 for any model: train the last 2 blocks and the head.",
             "A named constructor does it; the pooler (if any) should train as well.",
             lambda model: FreezePlan.train_top(model, 2), _same_frozen),
    Exercise("03.top2-trainable", "How many parameters does 'train top 2 + head' train on MiniLM-L6?",
             "fl.FreezePlan.train_top(model, 2).trainable_count(model), or read the result record.",
             lambda model: FreezePlan.train_top(model, 2).trainable_count(model), _equal),
    Exercise("03.state-saved",
             "How many MB of gradients + AdamW state does 'head only' save against full fine-tuning on MiniLM-L6?",
             "12 bytes per trainable parameter (a gradient and two AdamW moments, 4 bytes each); "
             "1 MB = 2**20 bytes; within 1 MB counts.",
             lambda model: (FreezePlan.full_finetune(model).trainable_count(model)
                            - FreezePlan.head_only(model).trainable_count(model)) * 12 / 2**20, _close(1.0)),
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
        right = bool(exercise.compare(answer, exercise.expected(**context), context))
    except ValueError as error:  # e.g. a plan with an unknown row
        print(f"❌ {key}: that answer raised an error: {error}")
        return False
    print(f"✅ {key}: right!" if right else f"❌ {key}: not yet. Hint: {exercise.hint}")
    return right
