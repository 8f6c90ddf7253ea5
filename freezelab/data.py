"""Course data sets as `datasets` objects: SST-2, SUBJ, CoLA, STS-B, word order, or any local CSV/TSV.

For: `load_task(name)` with fixed train/dev splits, read offline from the
folder named by FREEZELAB_DATA_DIR (tab-separated copies, one header line)
or online from the hub through `datasets`; deterministic subsets
(`train_size`, `seed`) so quick runs are small and repeatable; "word-order",
a task built from SST-2's sentences (original or shuffled?) that frozen
sentence features capture poorly; `tokenize`,
cached per (data, tokenizer, max_length).

Not for: training (`freezelab.training`) or probing (`freezelab.probes`).
Every task comes out with the same columns: `text` (and `text_pair` for
sentence pairs) and `label` (an int class, or a float score for STS-B).
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from functools import lru_cache
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from datasets.utils import logging as datasets_logging

DATA_DIR_VARIABLE = "FREEZELAB_DATA_DIR"


@dataclass(frozen=True)
class TaskInfo:
    name: str
    text: str
    pair: str | None
    label: str
    classes: tuple[str, ...] | None  # None: a regression score
    hub: tuple[str, ...]             # datasets.load_dataset arguments
    hub_dev_split: str


TASKS = {
    "sst2": TaskInfo("sst2", "sentence", None, "label", ("negative", "positive"), ("glue", "sst2"), "validation"),
    "subj": TaskInfo("subj", "sentence", None, "label", ("subjective", "objective"), ("SetFit/subj",), "test"),
    "cola": TaskInfo("cola", "sentence", None, "label", ("unacceptable", "acceptable"), ("glue", "cola"), "validation"),
    "stsb": TaskInfo("stsb", "sentence1", "sentence2", "score", None, ("glue", "stsb"), "validation"),
}


# Dev sentences of each course task's full dev split: one dev answer is worth 1 / this in accuracy, the finest
# difference a score on that split can show (`results.SPREAD_RULE`). tests/test_data.py checks them on the data.
DEV_SENTENCES = {"sst2": 872, "subj": 2000, "cola": 516, "stsb": 1500, "word-order": 848}


WORD_ORDER_MIN_WORDS = 6  # shorter sentences have few orders, and short phrases read fine shuffled


class DataNotAvailableError(OSError):
    """Neither the local copy nor the hub could provide the data set."""


def data_dir() -> Path | None:
    value = os.environ.get(DATA_DIR_VARIABLE)
    return Path(value).expanduser() if value else None


def _features(info: TaskInfo, classes=None) -> dict:
    features = {"text": Value("string")}
    if info.pair:
        features["text_pair"] = Value("string")
    classes = classes or info.classes
    features["label"] = ClassLabel(names=list(classes)) if classes else Value("float32")
    return features


def _from_frame(frame: pd.DataFrame, info: TaskInfo, classes=None) -> Dataset:
    columns = {"text": frame[info.text].astype(str).tolist()}
    if info.pair:
        columns["text_pair"] = frame[info.pair].astype(str).tolist()
    columns["label"] = frame[info.label].astype(float if info.classes is None and classes is None else int).tolist()
    return Dataset.from_dict(columns, features=Features(_features(info, classes)))


def _read_tsv(path: Path) -> pd.DataFrame:
    # GLUE files contain bare quotes inside sentences: read them as text, not as CSV quoting.
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)


def _local(info: TaskInfo, folder: Path) -> DatasetDict:
    splits = {}
    for split in ("train", "dev", "test"):
        path = folder / info.name / f"{split}.tsv"
        if path.exists():
            splits[split] = _from_frame(_read_tsv(path), info)
    if "train" not in splits or "dev" not in splits:
        raise DataNotAvailableError(f"{folder / info.name} has no train.tsv and dev.tsv")
    return DatasetDict(splits)


def _hub(info: TaskInfo) -> DatasetDict:
    from datasets import load_dataset

    raw = load_dataset(*info.hub)
    text, pair = ("text", None) if info.name == "subj" else (info.text, info.pair)
    hub_info = TaskInfo(info.name, text, pair, "label", info.classes, info.hub, info.hub_dev_split)
    splits = {}
    for split, hub_split in (("train", "train"), ("dev", info.hub_dev_split)):
        frame = raw[hub_split].to_pandas()
        if "label_text" in frame:  # SetFit sets: map by class name, not by the hub's numbering
            frame["label"] = frame["label_text"].map({c: i for i, c in enumerate(info.classes)})
        splits[split] = _from_frame(frame, hub_info)
    return DatasetDict(splits)


def majority_share(split: Dataset) -> float:
    """What always answering the most common class scores on this split (accuracy's chance level)."""
    counts = pd.Series(list(split["label"])).value_counts()
    return float(counts.iloc[0] / counts.sum())


def subset(data: DatasetDict, train_size: int | None, dev_size: int | None, seed: int) -> DatasetDict:
    """Seeded subsets of the train and dev splits (None keeps a split whole); checks the sizes."""
    for split, size in (("train", train_size), ("dev", dev_size)):
        if size is None:
            continue
        available = len(data[split])
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= available:
            raise ValueError(f"{split}_size must be a whole number from 1 to {available} (the {split} split's size), "
                             f"got {size!r}")
        # A seeded shuffle, then the first n: the same n and seed give the same sentences.
        with _quiet():
            data[split] = data[split].shuffle(seed=seed).select(range(size)).flatten_indices()
    return data


def load_task(name: str | None = None, *, path: str | os.PathLike | dict | None = None,
              text_column: str | int | None = None, label_column: str | int | None = None,
              train_size: int | None = None, dev_size: int | None = None, seed: int = 0,
              dev_fraction: float = 0.1) -> DatasetDict:
    """Load a course task ("sst2", "subj", "cola", "stsb", "word-order") or a local CSV/TSV file.

    Course tasks: from FREEZELAB_DATA_DIR when it is set, else from the hub.
    Local file: `load_task(path="reviews.csv", text_column="review",
    label_column="stars")`; a seeded `dev_fraction` of it becomes the dev split.
    Separate files: `path={"train": "train.csv", "dev": "dev.csv"}` (as `datasets`' data_files).
    No header line: columns by position, `text_column=0, label_column=1`.
    Rows with empty text are dropped, with a warning that counts them.
    train_size / dev_size: a deterministic subset (seeded shuffle, first n).
    """
    if path is not None:
        data = _local_file(path, text_column, label_column, seed, dev_fraction)
    elif name in TASKS or name == "word-order":
        folder = data_dir()
        folder = None if folder is None else str(folder)
        # Read once per process; each call gets its own DatasetDict (the datasets themselves are immutable).
        data = DatasetDict(_word_order_task(folder) if name == "word-order" else _course_task(TASKS[name], folder))
    else:
        raise ValueError(f"unknown task {name!r}; course tasks: {', '.join(TASKS)}, word-order, "
                         "or pass path=... with text_column and label_column for your own CSV/TSV")
    return subset(data, train_size, dev_size, seed)


@lru_cache(maxsize=8)
def _course_task(info: TaskInfo, folder: str | None) -> DatasetDict:
    if folder is not None:
        folder = Path(folder)
        if not (folder / info.name).is_dir():
            raise DataNotAvailableError(f"{DATA_DIR_VARIABLE}={folder} has no folder {info.name}/")
        return _local(info, folder)
    try:
        return _hub(info)
    except Exception as error:  # offline, hub down, dataset renamed: one clear message
        raise DataNotAvailableError(
            f"cannot load {info.name!r}: no local copy and the hub failed ({type(error).__name__}: {error}).\n"
            f"- Offline: set {DATA_DIR_VARIABLE} to a folder holding {info.name}/train.tsv and {info.name}/dev.tsv.\n"
            f"- Online: check the connection; the kit calls datasets.load_dataset{info.hub}."
        ) from None


def word_order(split: Dataset, seed: int, min_words: int = WORD_ORDER_MIN_WORDS) -> Dataset:
    """Sentences of `split` with at least `min_words` words; a seeded half of them with their words shuffled.

    Labels: 0 "shuffled", 1 "original". Each sentence appears once, one way or the other, so a model cannot
    answer by recognising the pair. A shuffle always differs from the original order.
    """
    rng = random.Random(seed)
    texts, labels = [], []
    for text in split["text"]:
        words = text.split()
        if len(words) < min_words:
            continue
        if rng.random() < 0.5:
            shuffled = words[:]
            while shuffled == words:
                rng.shuffle(shuffled)
            texts.append(" ".join(shuffled)), labels.append(0)
        else:
            texts.append(text), labels.append(1)
    features = Features({"text": Value("string"), "label": ClassLabel(names=["shuffled", "original"])})
    return Dataset.from_dict({"text": texts, "label": labels}, features=features)


@lru_cache(maxsize=2)
def _word_order_task(folder: str | None) -> DatasetDict:
    # Fixed shuffle seeds per split: which sentence is shuffled is part of the task, not of the run's seed.
    sst2 = _course_task(TASKS["sst2"], folder)
    return DatasetDict({"train": word_order(sst2["train"], seed=0), "dev": word_order(sst2["dev"], seed=1)})


def _read_table(path: Path, text_column, label_column) -> pd.DataFrame:
    """One local CSV/TSV as text and label strings. Columns by name (the first line is a header) or by position
    (0, 1, ...: the file has no header line). Rows with empty text are dropped, with a warning that counts them."""
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    if text_column is None or label_column is None or text_column == "" or label_column == "":
        raise ValueError("a local file needs text_column=... and label_column=... (names from its header line, "
                         "or positions 0, 1, ... for a file without one)")
    by_position = [isinstance(c, int) and not isinstance(c, bool) for c in (text_column, label_column)]
    if any(by_position) and not all(by_position):
        raise ValueError(f"give both columns by name or both by position, got text_column={text_column!r}, "
                         f"label_column={label_column!r}")
    sep = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    try:
        frame = pd.read_csv(path, sep=sep, keep_default_na=False, dtype=str, header=None if all(by_position) else 0)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty") from None
    columns = list(frame.columns)
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing and all(by_position):
        raise ValueError(f"{path} has {len(columns)} column(s) (positions 0 to {len(columns) - 1}); "
                         f"no column at position {missing[0]}")
    if missing:
        raise ValueError(f"{path} has no column {', '.join(map(repr, missing))}; its columns are: "
                         f"{', '.join(map(str, columns))}")
    if frame.empty:
        raise ValueError(f"{path} has a header but no rows")
    frame = pd.DataFrame({"text": frame[text_column], "label": frame[label_column].str.strip()})
    empty = frame["text"].str.strip() == ""
    if empty.any():
        warnings.warn(f"{path}: dropped {int(empty.sum())} of {len(frame)} rows with empty text", stacklevel=4)
        frame = frame[~empty].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"{path} has no row with text")
    return frame


def _classes(labels: pd.Series, label_column) -> list[str]:
    """The label strings that name classes, in a stable order (numbers numerically); errors for what is not."""
    classes = sorted(set(labels))
    numeric = pd.to_numeric(labels, errors="coerce")
    if numeric.notna().all():
        if (numeric != numeric.round()).any():
            raise ValueError(f"labels in {label_column!r} are not classes (found non-whole numbers such as "
                             f"{labels[numeric != numeric.round()].iloc[0]!r}); use whole numbers or names")
        classes = [str(c) for c in sorted(numeric.astype(int).unique())]
    if len(classes) < 2:
        raise ValueError(f"labels in {label_column!r} have a single class ({classes[0]!r}); need at least two")
    if len(classes) > 0.5 * len(labels) and len(labels) >= 20:
        raise ValueError(f"labels in {label_column!r} look continuous ({len(classes)} distinct values in "
                         f"{len(labels)} rows), not classes")
    return classes


def _local_file(path, text_column, label_column, seed: int, dev_fraction: float) -> DatasetDict:
    """One file split into train and dev (a seeded `dev_fraction`), or {"train": file, "dev": file} as they are
    (the `data_files` convention of `datasets.load_dataset`)."""
    if isinstance(path, dict):
        if set(path) != {"train", "dev"}:
            raise ValueError(f"separate files come as {{'train': path, 'dev': path}}; got the keys {sorted(path)}")
        frames = {split: _read_table(Path(file), text_column, label_column) for split, file in path.items()}
    else:
        frames = {"all": _read_table(Path(path), text_column, label_column)}
    labels = pd.concat([frame["label"] for frame in frames.values()], ignore_index=True)
    classes = _classes(labels, label_column)
    numeric = pd.to_numeric(labels, errors="coerce").notna().all()
    index = {c: i for i, c in enumerate(classes)}
    name = Path(path["train"] if isinstance(path, dict) else path).stem
    info = TaskInfo(name, "text", None, "label", tuple(classes), (), "")
    datasets = {}
    for split, frame in frames.items():
        keys = frame["label"].astype(float).astype(int).astype(str) if numeric else frame["label"]
        datasets[split] = _from_frame(pd.DataFrame({"text": frame["text"], "label": keys.map(index)}), info, classes)
    if "all" not in datasets:
        return DatasetDict(datasets)
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be between 0 and 1 (exclusive), got {dev_fraction!r}")
    split = datasets["all"].train_test_split(test_size=dev_fraction, seed=seed)
    return DatasetDict({"train": split["train"], "dev": split["test"]})


@contextmanager
def _quiet():
    """No progress bars for the small, fast dataset steps the kit runs."""
    was_enabled = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            datasets_logging.enable_progress_bar()


TOKENIZED: OrderedDict[tuple, Dataset] = OrderedDict()
TOKENIZED_MAX = 16  # tokenized splits kept; quick-size splits are a few hundred kB each


def _content_key(data: Dataset) -> str:
    """A hash of the sentences and labels themselves: equal content, equal key, however the Dataset was made."""
    digest = hashlib.blake2b(digest_size=16)
    columns = data[:]  # a dict of lists
    for column in sorted(columns):
        digest.update(repr((column, columns[column])).encode())
    return digest.hexdigest()


def tokenize(data: Dataset, tokenizer, max_length: int = 128) -> Dataset:
    """Token ids for `data` (truncated to max_length, not padded: the collator pads per batch).

    Cached in memory per (content of `data`, tokenizer, max_length), for the `TOKENIZED_MAX` most recent: a
    second fine-tune on the same subset does not tokenize again.
    """
    key = (_content_key(data), tokenizer.name_or_path, len(tokenizer), max_length)
    if key in TOKENIZED:
        TOKENIZED.move_to_end(key)
    else:
        pair = "text_pair" in data.column_names

        def encode(batch):
            return tokenizer(batch["text"], batch["text_pair"] if pair else None, truncation=True,
                             max_length=max_length)

        drop = [c for c in data.column_names if c != "label"]
        with _quiet():
            TOKENIZED[key] = data.map(encode, batched=True, remove_columns=drop)
        while len(TOKENIZED) > TOKENIZED_MAX:
            TOKENIZED.popitem(last=False)
    return TOKENIZED[key]
