"""Every exercise check accepts its solution, rejects an obviously wrong answer, and waits for a missing one."""

import pytest

from freezelab import FreezePlan
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
}


def context(key, bert_base, minilm):
    return {"model": minilm[0] if key == "01.embedding-share" or key.startswith("03.") else bert_base}


def test_every_exercise_has_a_solution_and_a_wrong_answer():
    assert set(EXERCISES) == set(SOLUTIONS) == set(WRONG)


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_check_accepts_the_solution(key, bert_base, minilm, capsys):
    ctx = context(key, bert_base, minilm)
    assert check(key, SOLUTIONS[key](ctx["model"]), **ctx)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_check_rejects_a_wrong_answer_with_a_hint(key, bert_base, minilm, capsys):
    assert not check(key, WRONG[key], **context(key, bert_base, minilm))
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
