"""Every exercise check accepts its solution, rejects an obviously wrong answer, and waits for a missing one."""

import pytest

from freezelab import FreezePlan, Schedule, results
from freezelab.exercises import EXERCISES, check
from freezelab.solutions import SOLUTIONS

WRONG = {
    "01.block-size": 7_000_000,
    "01.embedding-share": 0.2,
    "01.bigger-part": "attention",
    "02.top3-pooler-frozen": FreezePlan(["embeddings"]),
    "02.first8-embeddings": 0,
    "02.fix-last-2": FreezePlan(["embeddings", "head"]),
    "03.top2-trainable": 22_713_986,
    "03.state-saved": 12.0,
    "04.best-kept": "head only, lr 0.001",
    "04.top-block-cka": 1.0,
    "04.pooler-size": 384,
    "05.embeddings-lr": 1e-4,
    "05.phases": 6,
    "05.two-phases": lambda model: Schedule.gradual_unfreezing(model),
    "06.best-depth-small": 3,  # no run froze 3 blocks
    "06.best-depth-large": 5,
    "06.steps-300": 63,
}
MINILM = ("01.embedding-share", "03.", "04.pooler-size", "05.")
FRAMES = {"04.best-kept": "frontier", "04.top-block-cka": "frontier",
          "06.best-depth-small": "data-size", "06.best-depth-large": "data-size"}


def context(key, bert_base, minilm):
    """What each check needs: a model (MiniLM or bert-base), a shipped sweep, or nothing."""
    if key in FRAMES:
        return {"frame": results.shipped(FRAMES[key])}
    if key == "06.steps-300":
        return {}
    return {"model": minilm[0] if key.startswith(MINILM) else bert_base}


def wrong(key, ctx):
    answer = WRONG[key]
    return answer(**ctx) if callable(answer) else answer


def test_every_exercise_has_a_solution_and_a_wrong_answer():
    assert set(EXERCISES) == set(SOLUTIONS) == set(WRONG)


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_check_accepts_the_solution(key, bert_base, minilm, capsys):
    ctx = context(key, bert_base, minilm)
    assert check(key, SOLUTIONS[key](**ctx), **ctx)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_check_rejects_a_wrong_answer_with_a_hint(key, bert_base, minilm, capsys):
    ctx = context(key, bert_base, minilm)
    assert not check(key, wrong(key, ctx), **ctx)
    assert "Hint:" in capsys.readouterr().out


def test_an_unanswered_exercise_is_not_an_error(bert_base, capsys):
    assert not check("01.block-size", None, model=bert_base)
    assert "not answered yet" in capsys.readouterr().out


def test_a_plan_that_raises_counts_as_wrong(bert_base, capsys):
    assert not check("02.fix-last-2", FreezePlan(["block 99"]), model=bert_base)
    assert "out of range" in capsys.readouterr().out


def test_solutions_do_not_change_the_model(bert_base):
    SOLUTIONS["02.first8-embeddings"](bert_base)
    assert all(p.requires_grad for p in bert_base.parameters())


def test_unknown_exercise_key():
    with pytest.raises(ValueError, match="unknown exercise 'x'; exercises: 01.block-size"):
        check("x", 1)
