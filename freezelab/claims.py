"""The course's claims ledger: each sentence the course states about its shipped results, with a check.

A comparative, causal or general sentence in the course is one of two kinds. Either code prints it from the
data the reader has (a `results.compare` line, a table), or it is an entry here: an id, the sentence as the
course prints it, the shipped files it rests on, and a predicate over those files. The sentence carries its id
in the document as an HTML comment, `<!-- claim: 06.unfreezing-pays -->`, which Jupyter and the site hide.
CI (`tests/test_claims.py`) evaluates every predicate against the shipped results, checks that each marked
sentence reads as the ledger says, and fails on a comparative sentence that has neither a marker nor the form
of a question or a hypothesis.

Every "beyond the spread" and "about equal" here is `results.SPREAD_RULE`, through `results.gap`.

    python -m freezelab claims          # the ledger: id, holds, files, sentence

For: instructors and CI, and anyone who wants to know what a sentence of the course rests on. Not for:
numbers printed from a reader's live runs (code prints those), or checks of the kit's code (the tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Callable

import numpy as np
import pandas as pd

from . import results

MARKER = re.compile(r"<!--\s*claim:\s*([\w.-]+)\s*-->")
# A sentence that reports what a paper found rests on the paper, not on the shipped results: it carries
# `<!-- source: key -->`, and SOURCES says what the paper measured, so a reader can judge how far it carries.
SOURCE_MARKER = re.compile(r"<!--\s*source:\s*([\w.-]+)\s*-->")
SOURCES = {
    "biderman2024": "Biderman et al. (2024), LoRA Learns Less and Forgets Less (TMLR). Llama-2-7B, LoRA against "
                    "full fine-tuning on code and on mathematics; target-domain scores against the average of "
                    "HellaSwag, ARC-Challenge and WinoGrande, at checkpoints taken as training went on.",
}


@dataclass(frozen=True)
class Claim:
    id: str
    text: str                      # the sentence(s) as the course prints them, before the marker
    rests_on: tuple[str, ...]      # shipped result files (`results.shipped`)
    holds: Callable[[], bool]


LEDGER: dict[str, Claim] = {}


def claim(id: str, text: str, *rests_on: str):
    """Register the decorated predicate as the check of sentence `text`."""
    def register(predicate: Callable[[], bool]) -> Callable[[], bool]:
        if id in LEDGER:
            raise ValueError(f"claim {id!r} is registered twice")
        LEDGER[id] = Claim(id, " ".join(text.split()), rests_on, predicate)
        return predicate
    return register


def check(ids=None) -> pd.DataFrame:
    """Every claim (or those in `ids`) evaluated: id, holds (True / False, or the error it raised), files, text."""
    rows = []
    for claim_ in (LEDGER[i] for i in (ids or LEDGER)):
        try:
            verdict = bool(claim_.holds())
        except Exception as error:  # a predicate that cannot run does not hold; say why
            verdict = f"{type(error).__name__}: {error}"
        rows.append({"id": claim_.id, "holds": verdict, "rests on": ", ".join(claim_.rests_on), "text": claim_.text})
    return pd.DataFrame(rows)


def normalized(text: str) -> str:
    """Text with its whitespace collapsed and markdown's line breaks undone, to compare sentences."""
    return " ".join(text.split())


# ---- the shipped results, summarised once -------------------------------------------------------------------

@cache
def _summary(name: str, by: tuple = ("label",), metrics: tuple | None = None) -> pd.DataFrame:
    frame = results.shipped(name)
    table = results.summary(frame, by=by, **({"metrics": metrics} if metrics else {}))
    table = table.set_index(list(by) if len(by) > 1 else by[0])
    table.attrs["settings"] = frame.attrs["settings"]
    return table


def _outcome(name: str, a, b, metric: str = "dev_metric", by: tuple = ("label",)) -> str:
    return results.gap(_summary(name, by), a, b, metric).outcome


def _runs(name: str, label: str) -> pd.Series:
    frame = results.shipped(name)
    return frame[frame["label"] == label]


MAJORITY_SST2 = 0.52  # SST-2 dev's majority class scores 0.509; a run below 0.52 answers (almost) one class
FULL = {lr: f"full fine-tune, lr {lr}" for lr in ("2e-05", "0.0001", "0.0005", "0.001")}


# ---- notebook 04: the frontier -------------------------------------------------------------------------------

@claim("04.frozen-keeps-retention",
       "Runs that freeze the whole encoder keep the pre-trained knowledge exactly (retention = the dashed line)",
       "frontier")
def _frozen_keep():
    runs = results.flatten(results.shipped("frontier"))
    frozen = runs[(runs["frozen_blocks"] == runs["num_blocks"]) & ~runs["schedule"].astype(bool)]
    encoder_moved = any(v != 0 for drift in frozen["retention"] for cell, v in drift["weight_drift"].items()
                        if not cell.startswith(("head", "pooler")))
    return len(frozen) > 0 and frozen["sts_spearman"].nunique() == 1 and not encoder_moved


@claim("04.forgetting-ladder",
       "from 2e-5 to 1e-4 to 5e-4, each step down in retention is beyond the spread, while the accuracy of 1e-4 "
       "and 5e-4 is about equal.", "frontier")
def _ladder():
    return (_outcome("frontier", FULL["2e-05"], FULL["0.0001"], "sts_spearman") == "higher"
            and _outcome("frontier", FULL["0.0001"], FULL["0.0005"], "sts_spearman") == "higher"
            and _outcome("frontier", FULL["0.0001"], FULL["0.0005"]) == "about equal")


@claim("04.warm-up-at-5e-4", "At 5e-4 warm-up changes nothing beyond the spread.", "frontier")
def _warmup_5e4():
    cold = "full fine-tune, lr 0.0005, no warm-up"
    return all(_outcome("frontier", FULL["0.0005"], cold, m) == "about equal" for m in ("dev_metric", "sts_spearman"))


@claim("04.collapse-at-1e-3",
       "At 1e-3 without warm-up every seed ends at the majority class (the dotted line); with warm-up, one seed of "
       "three still collapses and the retention is lost all the same.", "frontier")
def _collapse():
    cold = _runs("frontier", "full fine-tune, lr 0.001, no warm-up")["dev_metric"]
    warm = _runs("frontier", FULL["0.001"])["dev_metric"]
    kept = _summary("frontier").loc[FULL["0.001"], "sts_spearman mean"]
    return (cold < MAJORITY_SST2).all() and (warm < MAJORITY_SST2).sum() == 1 and len(warm) == 3 and kept < 0.3


@claim("04.warm-up-decides-convergence",
       "Warm-up decides whether a high rate *converges*; the rate itself decides how much is *forgotten*.",
       "frontier")
def _warmup_vs_rate():
    # Separated by the 2x2: warm-up on and off at two rates. Warm-up moves convergence at 1e-3 and nothing
    # beyond the spread at 5e-4; the rate moves retention beyond the spread with warm-up on.
    return (_collapse() and _warmup_5e4()
            and _outcome("frontier", FULL["0.0005"], FULL["0.001"], "sts_spearman") == "higher")


@claim("04.freezing-no-safety-belt",
       "Training only the top 2 blocks at 5e-5 keeps most of the retention; the same plan at 5e-4 forgets about as "
       "much as full fine-tuning at 1e-4.", "frontier")
def _safety_belt():
    table = _summary("frontier")
    untouched = table.loc["head only (mean-pooled), lr 0.01", "sts_spearman mean"]  # a frozen encoder's score
    return (table.loc["train top 2 + head, lr 5e-05", "sts_spearman mean"] > 0.9 * untouched
            and _outcome("frontier", "train top 2 + head, lr 0.0005", FULL["0.0001"], "sts_spearman")
            == "about equal")


@claim("04.top-right-not-empty",
       "Some set-ups reach full fine-tuning's accuracy with far less forgetting.", "frontier")
def _top_right():
    table = _summary("frontier")
    best_full = table[table.index.str.startswith("full fine-tune")]["dev_metric mean"].idxmax()
    return any(_outcome("frontier", label, best_full) != "lower"
               and _outcome("frontier", label, best_full, "sts_spearman") == "higher"
               for label in table.index if label != best_full)


@claim("04.cls-head-at-majority",
       "In the course model's shipped frontier, the 2-class head on MiniLM's untrained pooler ends at the majority "
       "class on all three seeds.", "frontier")
def _cls_majority():
    runs = _runs("frontier", "head only, lr 0.001")["dev_metric"]
    return len(runs) == 3 and (runs < MAJORITY_SST2).all()


@claim("04.cls-head-larger-step",
       "In the course model's runs, the larger step moves the [CLS] head off the majority class on every seed, but "
       "it stays well below the mean-pooled head", "frontier")
def _cls_step():
    slow, fast = (_runs("frontier", f"head only, lr {lr}")["dev_metric"] for lr in ("0.001", "0.01"))
    return (fast.min() > slow.max() + 0.03
            and _outcome("frontier", "head only, lr 0.01", "head only (mean-pooled), lr 0.01") == "lower")


@claim("04.cka-grows-upward",
       "In the course model's shipped runs it grows towards the top: averaged over seeds, each layer's "
       "representations of a full fine-tune moved at least as much as the layer below.", "frontier")
def _cka_upward():
    runs = results.shipped("frontier")
    full = runs[(runs["plan"] == "full") & (runs["dev_metric"] > MAJORITY_SST2)]  # runs that learned the task
    cka = full.assign(cka=[list(r["cka"].values()) for r in full["retention"]]).groupby("label")["cka"]
    means = [pd.DataFrame(list(rows)).mean().tolist() for _, rows in cka]  # embeddings, then blocks bottom to top
    return len(means) > 0 and all(all(b <= a for a, b in zip(m, m[1:])) for m in means)


@claim("04.drift-similar-by-depth",
       "In the course model's shipped runs, the blocks of the full fine-tune changed their weights by similar "
       "fractions from the bottom block to the top (each block's mean relative change within a factor of two of "
       "every other's)", "frontier")
def _drift_similar():
    runs = results.shipped("frontier")
    full = runs[(runs["plan"] == "full") & (runs["dev_metric"] > MAJORITY_SST2) & runs["layer_decay"].isna()]
    for drift in full["retention"].map(lambda r: r["weight_drift"]):
        blocks = pd.Series(drift)[lambda s: s.index.str.startswith("block")]
        per_block = blocks.groupby(blocks.index.str.split("/").str[0]).mean()
        if per_block.max() > 2 * per_block.min():
            return False
    return len(full) > 0


# ---- notebook 05 ----------------------------------------------------------------------------------------------

@claim("05.gradual-like-top2",
       "at lr 1e-4 it lands within the seed spread of training the top 2 blocks, in accuracy and in retention.",
       "frontier")
def _gradual():
    gradual, top2 = "gradual unfreezing, lr 0.0001", "train top 2 + head, lr 0.0001"
    return all(_outcome("frontier", gradual, top2, m) == "about equal" for m in ("dev_metric", "sts_spearman"))


# ---- notebook 06: how much data ------------------------------------------------------------------------------

DEPTH = ("frozen_blocks", "train_size")


def _depths(size: int, a: int, b: int) -> str:
    return _outcome("data-size", (a, size), (b, size), by=DEPTH)


@claim("06.small-data-all-equal",
       "With 100 sentences every two depths are about equal: freezing buys no accuracy, and costs none (it still "
       "buys speed and keeps the pre-trained skills).", "data-size")
def _small_equal():
    depths = sorted(results.shipped("data-size")["frozen_blocks"].unique())
    return all(_depths(100, a, b) == "about equal" for a in depths for b in depths if a < b)


@claim("06.unfreezing-pays",
       "From 300 sentences on, training the top 4 blocks beats the frozen encoder beyond the spread; full "
       "fine-tuning does so from 1,000 sentences on, and training only the top 2 blocks only at 3,000.", "data-size")
def _unfreezing_pays():
    frozen, top2, top4, full = 6, 4, 2, 0  # frozen blocks of 6
    beats = lambda size, depth: _depths(size, depth, frozen) == "higher"  # noqa: E731
    return (all(beats(s, top4) for s in (300, 1000, 3000))
            and [beats(s, full) for s in (300, 1000, 3000)] == [False, True, True]
            and [beats(s, top2) for s in (300, 1000, 3000)] == [False, False, True])


@claim("06.large-data-no-single-best",
       "At 3,000 sentences full fine-tuning and the top 4 blocks are about equal: the grid names no single best "
       "depth there.", "data-size")
def _large_no_best():
    means = _summary("data-size", DEPTH).xs(3000, level="train_size")["dev_metric mean"]
    return set(means.nlargest(2).index) == {0, 2} and _depths(3000, 0, 2) == "about equal"


@claim("06.top4-over-top2",
       "Training the top 4 blocks scores above training the top 2 beyond the spread at 1,000 and 3,000 sentences, "
       "and about equal at 100 and 300.", "data-size")
def _top4_top2():
    return ([_depths(s, 2, 4) for s in (100, 300, 1000, 3000)]
            == ["about equal", "about equal", "higher", "higher"])


# ---- notebook 07 and the guide: forgetting in sequence ----------------------------------------------------------

def _sequence() -> pd.DataFrame:
    return _summary("sequential", metrics=("dev_metric", "first_before", "first_after", "cost"))


@claim("guide.freezing-more-in-sequence",
       "Freezing more does not: training only the top 4 or top 2 blocks on task B cost task A about as much as "
       "full fine-tuning at the same rate; only the head alone kept A whole.", "sequential")
def _freezing_more_in_sequence():
    full = "full fine-tune, lr 0.0001"
    same = all(_outcome("sequential", f"train top {k} + head, lr 0.0001", full, "cost") == "about equal"
               for k in (2, 4))
    costs = _sequence()["cost mean"]
    return same and costs.idxmin() == "head only, lr 0.01" and costs.min() == 0


@claim("07.sequence-freezing-and-lora",
       "Freezing more and LoRA are about equal to full fine-tuning at the same rate", "sequential")
def _sequence_freezing_lora():
    return (_freezing_more_in_sequence()
            and _outcome("sequential", "LoRA r=16 (attention), lr 0.0005", FULL["0.0005"], "cost") == "about equal")


@claim("07.sequence-lowest-rate",
       "the lowest rate costs a little less, beyond the spread but by a few points only.", "sequential")
def _sequence_low_rate():
    table = _sequence()
    gap = table.loc[FULL["0.0001"], "cost mean"] - table.loc[FULL["2e-05"], "cost mean"]
    return _outcome("sequential", FULL["2e-05"], FULL["0.0001"], "cost") == "lower" and gap < 0.05


# ---- notebook 07: other ways to choose what moves --------------------------------------------------------------

@cache
def _methods() -> pd.DataFrame:
    """The frontier's and the methods' set-ups in one table (the same settings: one map)."""
    frame = pd.concat([results.shipped("frontier"), results.shipped("methods")], ignore_index=True)
    frame.attrs["settings"] = results.shipped("frontier").attrs["settings"]
    table = results.summary(frame)
    table.attrs["settings"] = frame.attrs["settings"]
    return table


def _full_reference() -> pd.DataFrame:
    table = _methods()
    return table[(table["plan"] == "full") & table["warmup"].isna() & table["layer_decay"].isna()]


def _best(rows: pd.DataFrame) -> str:
    return rows.loc[rows["dev_metric mean"].idxmax(), "label"]


@claim("07.lora-at-its-best",
       "Its most accurate set-up and full fine-tuning's most accurate one are about equal, and so is their "
       "retention: at their best, the two are indistinguishable.", "frontier", "methods")
def _lora_best():
    table = _methods()
    lora, full = _best(table[table["plan"].str.startswith("lora")]), _best(_full_reference())
    return all(results.gap(table, lora, full, m).outcome == "about equal" for m in ("dev_metric", "sts_spearman"))


@claim("07.lora-below-the-curve",
       "Of the LoRA set-ups whose accuracy full fine-tuning also reached, most lie *below* the curve beyond the "
       "seed spread: at the same accuracy they kept less of the pre-trained skill. One (rank 4 on the attention "
       "matrices at 2e-3) lies just above it.", "frontier", "methods")
def _lora_curve():
    table = _methods()
    verdicts = results.against_curve(table[table["plan"].str.startswith("lora")], _full_reference())
    inside = verdicts.set_index("label")["verdict"][lambda v: v != "outside the curve's accuracy range"]
    return (inside.str.startswith("below").sum() > len(inside) / 2
            and list(inside[inside.str.startswith("above")].index) == ["LoRA r=4 (attention), lr 0.002"])


@claim("07.rank-is-the-dial",
       "At 5e-4, retention falls from rank 4 to 16 to 64 on both kinds of target. At 2e-3, rank 64 diverges on "
       "some seeds", "methods")
def _rank():
    kept = _methods().set_index("label")["sts_spearman mean"]
    runs = results.shipped("methods")
    return all(kept[f"LoRA r=4 ({t}), lr 0.0005"] > kept[f"LoRA r=16 ({t}), lr 0.0005"]
               > kept[f"LoRA r=64 ({t}), lr 0.0005"]
               and runs.loc[runs["label"] == f"LoRA r=64 ({t}), lr 0.002", "dev_metric"].min() < 0.55
               for t in ("attention", "all-linear"))


@claim("07.thinnest-methods",
       "LayerNorm-only at 5e-3 lies above the curve beyond the spread; BitFit at 5e-3 lies below it.",
       "frontier", "methods")
def _thinnest():
    table = _methods()
    verdicts = results.against_curve(table[table["plan"].isin(["lnorm", "bitfit"])], _full_reference())
    verdicts = verdicts.set_index("label")["verdict"]
    return (verdicts["LayerNorm only (+ head), lr 0.005"] == "above the curve, beyond the seed spread"
            and verdicts["BitFit (biases + head), lr 0.005"] == "below the curve, beyond the seed spread")


@cache
def _small_data() -> pd.DataFrame:
    frame = pd.concat([results.shipped("data-size"), results.shipped("methods-data-size")], ignore_index=True)
    frame = frame[frame["train_size"] <= 1000]
    frame.attrs["settings"] = results.shipped("data-size").attrs["settings"]
    table = results.summary(frame, by=("label", "train_size"), metrics=("dev_metric",))
    table.attrs["settings"] = frame.attrs["settings"]
    return table


def _at_size(size: int) -> pd.DataFrame:
    part = _small_data()[lambda t: t["train_size"] == size].drop(columns="label").set_index("plan")
    part.attrs = _small_data().attrs
    return part


@claim("07.bitfit-small-data",
       "BitFit comes as close to full fine-tuning as three seeds can tell at 100 and 300 sentences, and falls behind "
       "beyond the spread at 1,000", "data-size", "methods-data-size")
def _bitfit_small():
    return [results.gap(_at_size(s), "bitfit", "full").outcome for s in (100, 300, 1000)] == \
        ["about equal", "about equal", "lower"]


@claim("07.no-method-beats-best-depth",
       "No parameter-efficient method beats the best freezing depth beyond the spread at any size", "data-size",
       "methods-data-size")
def _no_method_beats_depth():
    freezing = ["head", "top2", "top4", "full"]
    for size in (100, 300, 1000):
        part = _at_size(size)
        best_depth = part.loc[freezing, "dev_metric mean"].idxmax()
        if any(results.gap(part, method, best_depth).outcome == "higher" for method in part.index.drop(freezing)):
            return False
    return True


MOVED = ["full fine-tune, lr 2e-05", "full fine-tune, lr 0.0001", "full fine-tune, lr 0.0005",
         "train top 4 + head, lr 0.0001", "train top 2 + head, lr 0.0001", "LoRA r=16 (attention), lr 0.0005"]


@claim("07.sequence-body-moves",
       "After SUBJ, SST-2's accuracy through its own head falls from about 0.82 to about the majority class, "
       "whether SUBJ was learned by full fine-tuning at any of the three rates, by the top 4 or top 2 blocks alone, "
       "or by LoRA.", "sequential")
def _body_moves():
    moved = _sequence().loc[MOVED]
    return bool(((moved["first_before mean"] - 0.82).abs() < 0.02).all()
                and ((moved["first_after mean"] - 0.509).abs() < 0.03).all())  # 0.509: SST-2 dev's majority


@claim("07.sequence-head-keeps",
       "The head alone costs A exactly nothing, and learns SUBJ worse than every set-up that trains whole blocks "
       "or LoRA adapters.", "sequential")
def _head_keeps():
    runs = results.shipped("sequential")
    head = "head only, lr 0.01"
    free = (runs[runs["label"] == head]["sequential"].map(lambda r: r["cost"]) == 0).all()
    return bool(free) and all(_outcome("sequential", head, label) == "lower" for label in MOVED)


@claim("07.sequence-bitfit",
       "BitFit, which moves only the biases, costs A little (under 0.05) and learns SUBJ worst of all.", "sequential")
def _bitfit_sequence():
    table = _sequence()
    bitfit = "BitFit (biases + head), lr 0.001"
    return table.loc[bitfit, "cost mean"] < 0.05 and table["dev_metric mean"].idxmin() == bitfit


# ---- notebook 05 ----------------------------------------------------------------------------------------------

GRADUAL, TOP2_1E4 = "gradual unfreezing, lr 0.0001", "train top 2 + head, lr 0.0001"


@claim("05.gradual-against-full",
       "Gradual unfreezing at 1e-4 matches full fine-tuning's accuracy and keeps far more retention, beyond the "
       "spread.", "frontier")
def _gradual_full():
    return (_outcome("frontier", GRADUAL, FULL["0.0001"]) == "about equal"
            and _outcome("frontier", GRADUAL, FULL["0.0001"], "sts_spearman") == "higher")


@claim("05.top2-same-point",
       "But the static plan *train top 2 + head* at the same 1e-4 lands on the same point: accuracy and retention "
       "both about equal to the schedule's.", "frontier")
def _top2_same_point():
    return _gradual()


@claim("05.no-credit-for-the-schedule",
       "A schedule earns its complexity only where it beats the best static plan at the same learning rate, and "
       "here it does not.", "frontier")
def _no_credit():
    # The best static plan at 1e-4 on this frontier is top 2 (full fine-tuning keeps far less): the schedule
    # beats it on neither axis.
    return all(_outcome("frontier", GRADUAL, TOP2_1E4, m) != "higher" for m in ("dev_metric", "sts_spearman"))


# ---- notebook 04: under-adaptation on word order, at full size -------------------------------------------------

def _order(plan: str, pooling: str = "cls") -> str:
    return results.pick(results.shipped("word-order"), plan, pooling=pooling)


@cache
def _layers() -> pd.DataFrame:
    """The layer probes as a `summary`-like table: one row per vector, mean ± std over seeds."""
    probes = results.shipped_probes("word-order")
    table = probes.groupby("vector", sort=False)["dev accuracy"].agg(["mean", "std", "count"])
    table.columns = ["dev_metric mean", "dev_metric std", "seeds"]
    table.attrs["settings"] = {"task": probes.attrs["settings"]["task"], "dev_size": None}
    return table


@claim("04.word-order-frozen-trails",
       "At full size the frozen head trails both *top 2* and *full* beyond the spread.", "word-order")
def _order_trails():
    frozen = _order("head", "mean")
    return all(_outcome("word-order", _order(plan), frozen) == "higher" for plan in ("top2", "full"))


@claim("04.word-order-not-the-vector",
       "Reading the same mean vector as the frozen head, *top 2* and *full* still beat it beyond the spread: which "
       "vector the head reads does not explain the gap.", "word-order")
def _order_control():
    frozen = _order("head", "mean")
    return all(_outcome("word-order", _order(plan, "mean"), frozen) == "higher" for plan in ("top2", "full"))


@claim("04.word-order-held-below",
       "The frozen encoder does hold word order, lower down: a linear probe on the best layer's mean vector comes "
       "within 0.02 of full fine-tuning, while on the top layer's mean vector, the one the frozen head reads, it "
       "stays below the best layer beyond the spread.", "word-order")
def _order_below():
    layers = _layers()
    blocks = [v for v in layers.index if v.startswith("block")]
    best, top = layers.loc[blocks, "dev_metric mean"].idxmax(), blocks[-1]
    full = _summary("word-order").loc[_order("full"), "dev_metric mean"]
    return (best != top and full - layers.loc[best, "dev_metric mean"] < 0.02
            and results.gap(layers, best, top).outcome == "higher")


# ---- the same findings as the README and the teachers' guide word them -----------------------------------------

@claim("readme.gradual-and-top2",
       "Gradual unfreezing at 1e-4 matches full fine-tuning's accuracy with far more retention, and so does "
       "training the top 2 blocks at the same rate: the two lie within each other's spread.", "frontier")
def _readme_gradual():
    return (_gradual_full() and _gradual()
            and _outcome("frontier", TOP2_1E4, FULL["0.0001"], "sts_spearman") == "higher")


@claim("guide.warm-up-2x2",
       "At 5e-4 warm-up changes nothing beyond the seed spread; at 1e-3 without warm-up every seed collapses to the "
       "majority class, with warm-up one seed of three still does, and retention is lost either way.", "frontier")
def _guide_warmup():
    return _warmup_5e4() and _collapse() and _summary("frontier").loc[
        "full fine-tune, lr 0.001, no warm-up", "sts_spearman mean"] < 0.3


@claim("guide.warm-up-decides",
       "So warm-up decides whether a high rate converges (AdamW's first updates are about lr per weight, whatever "
       "the gradient's size, before the new head has learned anything); the rate decides what is forgotten.",
       "frontier")
def _guide_decides():
    return _warmup_vs_rate()


@claim("precomputed.cpu-minilm-fp32",
       "All were run on a CPU (no GPU), MiniLM-L6 (`minilm-l6`), fp32, and each record says its device, precision, "
       "steps and times.", "frontier", "data-size", "methods", "methods-data-size", "sequential", "word-order",
       "cola-depth")
def _precomputed_cpu():
    for name in ("frontier", "data-size", "methods", "methods-data-size", "sequential", "word-order", "cola-depth"):
        runs = results.shipped(name)
        if not ({"device", "precision", "steps", "train_time_s"} <= set(runs)
                and (runs["device"] == "cpu").all() and (runs["precision"] == "fp32").all()
                and results.shipped(name).attrs["settings"]["checkpoint"] == "minilm-l6"):
            return False
    return True


@claim("04.sst2-frozen-cost",
       "On the course model's shipped frontier (2,000 sentences), the frozen mean-pooled head scores below full "
       "fine-tuning at 1e-4 beyond the spread, by less than 3 points.", "frontier")
def _sst2_cost():
    frozen = "head only (mean-pooled), lr 0.01"
    gap = results.gap(_summary("frontier"), frozen, FULL["0.0001"])
    return gap.outcome == "lower" and -gap.gap < 0.03


@claim("04.sst2-gap-grows",
       "In notebook 06's grid the gap between the frozen encoder and full fine-tuning grows from about equal at 300 "
       "sentences to more than 5 points at 3,000.", "data-size")
def _sst2_gap_grows():
    gaps = [results.gap(_summary("data-size", DEPTH), (0, s), (6, s)) for s in (300, 1000, 3000)]
    return (gaps[0].outcome == "about equal" and gaps[0].gap < gaps[1].gap < gaps[2].gap
            and gaps[2].outcome == "higher" and gaps[2].gap > 0.05)


@claim("guide.word-order",
       "the frozen head trails *top 2* and *full* beyond the spread, also when those read the same mean vector as "
       "the frozen head; yet a linear probe on a lower block of the frozen encoder comes within 0.02 of full "
       "fine-tuning.", "word-order")
def _guide_order():
    return _order_trails() and _order_control() and _order_below()


@claim("guide.sst2-few-points",
       "A sentence encoder's frozen features already hold much of the sentiment, so a head on them comes within a "
       "few points of full fine-tuning at 2,000 sentences; notebook 06 shows the gap growing with the data.",
       "frontier", "data-size")
def _guide_sst2():
    return _sst2_cost() and _sst2_gap_grows()


# ---- notebook 06: CoLA --------------------------------------------------------------------------------------------

@claim("06.cola-nothing-learned",
       "At this budget no depth learns CoLA: every set-up's mean Matthews correlation lies within 0.1 of 0, the score "
       "of answering \"acceptable\" every time.", "cola-depth")
def _cola_nothing():
    runs = results.shipped("cola-depth")
    means = runs.groupby("frozen_blocks")["dev_metric"].mean()
    return (runs["metric"] == "matthews").all() and len(means) == 4 and bool((means.abs() < 0.1).all())


@claim("06.natural-task",
       "The natural task where freezing costs accuracy beyond the spread is SST-2 itself, given enough data: at "
       "3,000 sentences every depth that trains blocks beats the frozen encoder (section 3).", "data-size")
def _natural_task():
    return all(_depths(3000, depth, 6) == "higher" for depth in (0, 2, 4))


@claim("guide.cola",
       "The shipped CoLA grid cannot tell: at 2,000 sentences and 2 epochs no depth learns CoLA (Matthews "
       "correlation near 0).", "cola-depth")
def _guide_cola():
    return _cola_nothing()


@claim("readme.cls-head",
       "A head on the untrained [CLS] pooler sits at the majority class at lr 1e-3 and reaches only 0.59 at 1e-2, "
       "while the same frozen encoder read through mean pooling reaches 0.79.", "frontier")
def _readme_cls():
    table = _summary("frontier")
    return (_cls_majority() and round(table.loc["head only, lr 0.01", "dev_metric mean"], 2) == 0.59
            and round(table.loc["head only (mean-pooled), lr 0.01", "dev_metric mean"], 2) == 0.79)


@claim("readme.forgetting-ladder",
       "From 2e-5 to 1e-4 to 5e-4 full fine-tuning's retention falls, each step beyond the seed spread, while the "
       "accuracy of 1e-4 and 5e-4 is about equal.", "frontier")
def _readme_ladder():
    return _ladder()


@claim("readme.warm-up",
       "Warm-up makes no difference at 5e-4; at 1e-3 it saves two seeds of three from collapsing to the majority "
       "class, but not the retention.", "frontier")
def _readme_warmup():
    return _warmup_5e4() and _collapse()


@claim("readme.data-size",
       "With 100 sentences every two depths are about equal; from 300 sentences on, training the top 4 blocks beats "
       "the frozen encoder beyond the spread, full fine-tuning from 1,000 and the top 2 blocks only at 3,000; at "
       "3,000 full fine-tuning and the top 4 blocks are about equal.", "data-size")
def _readme_data_size():
    return _small_equal() and _unfreezing_pays() and _large_no_best()


# ---- notebook 08: remedies ----------------------------------------------------------------------------------------

REMEDY_RATES = (2e-5, 1e-4, 5e-4)


def _heads(lr: float) -> tuple[str, str]:
    """(LP-FT's label, the random head's label) at `lr` in the remedies sweep."""
    runs = results.shipped("remedies")
    return results.pick(runs, "full", lr, head_start="probe"), results.pick(runs, "full", lr, head_start=None)


@cache
def _walks() -> pd.DataFrame:
    """The remedies sweep's walks, both heads, alpha 1 (the run itself) included, summarised, with the shipped
    frontier's full fine-tunes beside them: one table, so the spread rule compares across the two."""
    walks = results.summary(results.alpha_curves(results.shipped("remedies")), metrics=("dev_metric", "sts_spearman"))
    frontier = results.shipped("frontier")
    full = results.summary(frontier[frontier["plan"] == "full"], metrics=("dev_metric", "sts_spearman"))
    table = pd.concat([walks, full], ignore_index=True)
    table.attrs["settings"] = frontier.attrs["settings"]
    return table


def _walk_label(lr: float, alpha: float, head: int = 1) -> str:
    """A walk's label in `_walks()`: head 1 the random head's run, 0 LP-FT's."""
    return f"{_heads(lr)[head]} · α {alpha:.2f}"


@claim("08.lpft-keeps-more",
       "On the course model's shipped runs, fitting the head first kept more STS-B than a random head at all three "
       "rates, beyond the spread: by 0.04 at 2e-5, 0.26 at 1e-4 and 0.31 at 5e-4. Its accuracy was about equal at "
       "1e-4 and 5e-4, and higher at 2e-5.", "remedies")
def _lpft_keeps_more():
    table = _summary("remedies")
    kept = [results.gap(table, *_heads(lr), "sts_spearman") for lr in REMEDY_RATES]
    dev = [results.gap(table, *_heads(lr), "dev_metric").outcome for lr in REMEDY_RATES]
    return (all(k.outcome == "higher" for k in kept) and [round(k.gap, 2) for k in kept] == [0.04, 0.26, 0.31]
            and dev == ["higher", "about equal", "about equal"])


@claim("08.lpft-same-seed",
       "Each pair of runs shares its seed, data order and rate; the head's start is the one thing that differs.",
       "remedies")
def _lpft_pairs():
    runs = results.shipped("remedies")
    pairs = runs.groupby(["lr", "seed"])["head_start"].apply(lambda s: sorted(s.fillna("random")))
    same = runs.groupby(["lr", "seed"])[["train_size", "epochs", "steps", "pooling"]].nunique()
    return bool((pairs.map(tuple) == ("probe", "random")).all() and (same == 1).all().all()
                and runs.attrs["settings"]["head_start"] == "random")


@claim("08.walk-at-1e-4",
       "Walked back to α = 0.7, the full fine-tune at 1e-4 gives up 0.011 of accuracy, which the seeds cannot tell "
       "from nothing, and gets back 0.19 of STS-B, beyond the spread.", "remedies")
def _walk_1e4():
    table = _walks()
    back, end = _walk_label(1e-4, 0.7), _walk_label(1e-4, 1.0)
    dev, kept = (results.gap(table, back, end, metric) for metric in ("dev_metric", "sts_spearman"))
    return (dev.outcome == "about equal" and round(dev.gap, 3) == -0.011
            and kept.outcome == "higher" and round(kept.gap, 2) == 0.19)


@claim("08.walks-beat-every-full-run",
       "Every full fine-tune of the shipped frontier (all eight: each rate, with and without warm-up, and layer "
       "decay) has a walked-back run that keeps more STS-B beyond the spread at an accuracy the seeds cannot tell "
       "lower.", "remedies", "frontier")
def _walks_beat_all():
    table = _walks()
    frontier = results.shipped("frontier")
    full = list(dict.fromkeys(frontier.loc[frontier["plan"] == "full", "label"]))
    walks = [_walk_label(lr, alpha) for lr in REMEDY_RATES for alpha in (0.7, 0.4)]  # random head, walked back
    return len(full) == 8 and all(
        any(results.gap(table, w, f, "dev_metric").outcome != "lower"
            and results.gap(table, w, f, "sts_spearman").outcome == "higher" for w in walks) for f in full)


@claim("08.lpft-against-walk",
       "At 1e-4, fitting the head first kept more STS-B than walking the random-head run back to α = 0.7 (0.85 "
       "against 0.79, beyond the spread), at an accuracy the seeds cannot tell apart.", "remedies")
def _lpft_vs_walk():
    table = _walks()
    lpft, back = _walk_label(1e-4, 1.0, head=0), _walk_label(1e-4, 0.7)  # LP-FT's alpha 1 is its run itself
    rows = table.set_index("label")
    return (results.gap(table, lpft, back, "sts_spearman").outcome == "higher"
            and results.gap(table, lpft, back, "dev_metric").outcome == "about equal"
            and round(rows.loc[lpft, "sts_spearman mean"], 2) == 0.85
            and round(rows.loc[back, "sts_spearman mean"], 2) == 0.79)


@claim("results.remedies-reproduce-frontier",
       "Its random-head runs are the frontier's own full fine-tunes, retrained: the same dev accuracy on every seed.",
       "remedies", "frontier")
def _remedies_reproduce():
    def accuracy(frame):  # full fine-tunes with every option at its default (an option never set has no column)
        unset = [frame[o].isna() for o in ("warmup", "layer_decay", "head_start") if o in frame]
        full = frame[(frame["plan"] == "full") & np.logical_and.reduce(unset)]
        return full.set_index(["lr", "seed"])["dev_metric"].sort_index()
    again, shipped = accuracy(results.shipped("remedies")), accuracy(results.shipped("frontier"))
    return len(again) == 9 and bool(((again - shipped.loc[again.index]).abs() < 1e-9).all())
