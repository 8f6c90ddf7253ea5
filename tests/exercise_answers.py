"""Known wrong answers to every exercise, computed for the model or results at hand.

Each is a mistake a student really makes (off by one row, a forgotten bias, the bug a recipe teaches), so a
check that accepts one of them is broken. Used by tests/test_exercises.py and by the second-checkpoint pass
over the notebooks (tests/test_notebooks_any_checkpoint.py), which runs them in the notebooks' own kernels.
"""

from freezelab import FreezePlan, Schedule, anatomy, results, trainable_summary
from solutions import SOLUTIONS  # teacher/, on sys.path (conftest)


def _cells(model, row):
    return anatomy(model).table().set_index(["row", "column"])["total"][row]


def _query_at(start, end, alpha):
    name = [n for n in anatomy(start).names_in(row="block 0", column="query") if n.endswith("weight")][0]
    a, b = (dict(m.named_parameters())[name][0, 0].item() for m in (start, end))
    return (1 - alpha) * a + alpha * b


def _differs(right, wrong, tolerance=1e-5):
    """The wrong answers that are not right here too (an end of the curve may be the right answer by chance)."""
    return [w for w in wrong if abs(w - right) > tolerance]


def _regret_wrong(reference, setup="full fine-tune, lr 2e-05"):
    subj = reference[reference["task"] == "subj"].set_index("setup")
    pooled = subj["score_var"].mean() ** 0.5
    kept = subj.loc[subj["retention"] >= 0.8, "score"].max()
    return [(subj["score"].max() - subj.loc[setup, "score"]) / pooled,  # the floor forgotten
            kept - subj.loc[setup, "score"],  # in points, not seed standard deviations
            (kept - subj.loc[setup, "score"]) / subj.loc[setup, "score_var"] ** 0.5]  # the set-up's own spread


def _table(frame):
    return results.summary(frame)


def _most_accurate_if_it_forgets_more(frame, probe):
    """The most accurate set-up, retention ignored: a mistake only where the spread rule puts its retention below
    the best's (on a random-weight model every run may keep the same)."""
    table = _table(frame).sort_values("dev_metric mean")
    close = table[table["dev_metric mean"] >= table["dev_metric mean"].max() - 0.02]
    most_accurate = str(table.iloc[-1]["label"])
    best = str(close.loc[close[f"{probe} mean"].idxmax(), "label"])
    return [most_accurate] if results.gap(table, best, most_accurate, probe).outcome == "higher" else []


def _most_retentive_if_it_learned_less(frame, probe):
    """The set-up that keeps the most, accuracy ignored: a mistake where it is not within 0.02 of the best accuracy."""
    table = _table(frame)
    kept = table.loc[table[f"{probe} mean"].idxmax()]
    return [str(kept["label"])] if kept["dev_metric mean"] < table["dev_metric mean"].max() - 0.02 else []


def _tied_wrong(frame, size):
    """Naming the best depth alone where the seeds cannot separate it from others; naming every depth where they
    can; and depths no run froze."""
    right = set(SOLUTIONS["06.best-depth-small"](frame[frame["train_size"] == size]))
    means = frame[frame["train_size"] == size].groupby("frozen_blocks")["dev_metric"].mean()
    every = set(int(d) for d in means.index)
    wrong = [[3, 5]] + ([[int(means.idxmax())]] if len(right) > 1 else []) + ([sorted(every)] if right != every else [])
    return wrong


def _lowest_wrong(frame):
    """Every plan the spread rule tells from the lowest one (none, when all runs tie, as on random weights)."""
    table = results.summary(frame, by=("plan",), metrics=("dev_metric",)).set_index("plan")
    table.attrs = frame.attrs
    low = table["dev_metric mean"].idxmin()
    return [plan for plan in table.index if results.gap(table, plan, low).outcome == "higher"] + ["random"]


def _not_within(tolerance, right, answers):
    """The mistakes that miss the right number by more than the question's tolerance: on a model whose layers all
    changed alike (random weights), a mistake can land on the right number, and then it is no mistake."""
    return [float(a) for a in answers if abs(float(a) - right) > tolerance]


WRONG = {
    "01.block-size": lambda model: [
        int(trainable_summary(model).loc["block 0", "total"]),  # the number, copied: not a function of the shape
        lambda c: 4 * c.hidden_size ** 2 + 2 * c.hidden_size * c.intermediate_size,  # weights only
        lambda c: 4 * (c.hidden_size ** 2 + c.hidden_size) + 2 * c.hidden_size * c.intermediate_size
        + c.intermediate_size + c.hidden_size,  # the LayerNorms forgotten
        lambda c: 12 * c.hidden_size ** 2 + 13 * c.hidden_size,  # right only where f = 4 x h
        lambda c: int(_cells(model, "block 0")[["query", "key", "value", "attn out"]].sum()),  # attention only
    ],
    "01.embedding-share": lambda model: [1 - trainable_summary(model).loc["embeddings", "total"]
                                         / trainable_summary(model).loc["all", "total"]],
    "01.bigger-part": lambda model: ["attention"],
    "02.top3-pooler-frozen": lambda model: [FreezePlan.train_top(model, 3), FreezePlan(["embeddings"])],
    "02.first8-embeddings": lambda model: [0],
    "02.fix-last-2": lambda model: [
        lambda m: FreezePlan(["embeddings", "head"]),  # the printed recipe freezes the head
        lambda m: FreezePlan.freeze_bottom(m, anatomy(m).num_blocks - 2, embeddings=False),  # embeddings train
        lambda m: FreezePlan(["embeddings", "pooler"] + [f"block {i}" for i in range(10)]),  # BERT-base's 12 only
        FreezePlan.train_top(model, 2)],  # a plan for this model, not a fix for any model
    "03.top3-trainable": lambda model: [sum(p.numel() for p in model.parameters()),
                                        FreezePlan.train_top(model, 2).trainable_count(model)],  # the table's top 2
    "03.state-saved": lambda model: [(FreezePlan.full_finetune(model).trainable_count(model)
                                      - FreezePlan.head_only(model).trainable_count(model)) * 8 / 2**20],  # no grads
    "04.best-kept": lambda frame, probe="sts_spearman": _most_accurate_if_it_forgets_more(frame, probe),
    "04.top-block-cka": lambda frame, label: _not_within(0.02, SOLUTIONS["04.top-block-cka"](frame, label), [
        1.0,  # "CKA is 1 for frozen layers", but this block trained
        results.flatten(frame).loc[lambda f: f["label"] == label, "retention"].apply(  # the bottom layer's CKA
            lambda r: list(r["cka"].values())[0]).mean()]),
    "04.pooler-size": lambda model: [model.config.hidden_size ** 2, model.config.hidden_size],  # weight or bias only
    "05.embeddings-lr": lambda model: [3e-4, 3e-4 * 0.9 ** anatomy(model).num_blocks,  # no decay; one row short
                                       1e-4 * 0.8 ** (anatomy(model).num_blocks + 1)],  # the table's settings
    "05.phases": lambda model: [anatomy(model).num_blocks, anatomy(model).num_blocks + 2],
    "05.two-phases": lambda model: [Schedule.gradual_unfreezing(model)],
    "06.best-depth-small": lambda frame: _tied_wrong(frame, frame["train_size"].min()),
    "06.best-depth-large": lambda frame: _tied_wrong(frame, frame["train_size"].max()),
    "04.order-lowest": _lowest_wrong,
    "07.lora-added": lambda model: [
        SOLUTIONS["07.lora-added"](model) // 2,  # query and value only: peft's default targets for BERT
        SOLUTIONS["07.lora-added"](model) + FreezePlan.head_only(model).trainable_count(model),  # the head too
        4 * model.config.num_hidden_layers * 8 * model.config.hidden_size,  # r x h per matrix: A alone, B forgotten
        4 * model.config.num_hidden_layers * model.config.hidden_size ** 2],  # the matrices themselves
    "07.best-kept-method": lambda frame, probe="sts_spearman": (_most_accurate_if_it_forgets_more(frame, probe)
                                                                + _most_retentive_if_it_learned_less(frame, probe)),
    "06.steps-250": lambda: [56, 64 * 32, 70],
    "09.regret": lambda reference: _differs(SOLUTIONS["09.regret"](reference), _regret_wrong(reference), 0.01),
    "08.weight-at-0.3": lambda pretrained, finetuned: _differs(SOLUTIONS["08.weight-at-0.3"](pretrained, finetuned), [
        _query_at(finetuned, pretrained, 0.3),  # the ends swapped: 0.7 of the fine-tuned number
        _query_at(pretrained, finetuned, 0.0),  # the pre-trained number as it is
        _query_at(pretrained, finetuned, 1.0)]),  # the fine-tuned one
    "08.floor-alpha": lambda frame, untouched: _differs(SOLUTIONS["08.floor-alpha"](frame, untouched), [
        float(frame["alpha"].min()),  # the smallest alpha that keeps it: every curve's alpha 0 does
        float(frame.loc[frame["sts_spearman"] >= 0.9 * float(frame.loc[frame["alpha"].idxmax(), "sts_spearman"]),
                        "alpha"].max()),  # 90% of the fine-tuned model's retention, not the untouched one's
        float(frame.loc[frame["dev_metric"].idxmax(), "alpha"])]),  # the most accurate alpha, floor forgotten  # 8 epochs of 7 batches; examples instead of steps; 300's answer
}
