"""Specification of load_task: the course tasks offline (four data sets and word order built from one), deterministic subsets, local files and their errors."""

import pytest

from freezelab.data import DATA_DIR_VARIABLE, WORD_ORDER_MIN_WORDS, DataNotAvailableError, load_task, tokenize

pytestmark = pytest.mark.usefixtures("offline_data")  # conftest: FREEZELAB_DATA_DIR or ../shared/data


@pytest.mark.parametrize("name, train, dev, classes", [
    ("sst2", 67_349, 872, ["negative", "positive"]),
    ("subj", 8_000, 2_000, ["subjective", "objective"]),
    ("cola", 8_551, 516, ["unacceptable", "acceptable"]),
])
def test_single_sentence_tasks(name, train, dev, classes):
    data = load_task(name)
    assert (len(data["train"]), len(data["dev"])) == (train, dev)
    assert data["train"].features["label"].names == classes
    assert set(data["train"].column_names) == {"text", "label"}


def test_sts_b_is_sentence_pairs_with_scores():
    data = load_task("stsb")
    row = data["train"][0]
    assert (len(data["train"]), len(data["dev"])) == (5_749, 1_500)
    assert row == {"text": "A plane is taking off.", "text_pair": "An air plane is taking off.", "label": 5.0}


def test_word_order_is_sst2_sentences_half_of_them_shuffled():
    sst2, task = load_task("sst2"), load_task("word-order")
    assert task["train"].features["label"].names == ["shuffled", "original"]
    originals = set(sst2["train"]["text"])
    for split in ("train", "dev"):
        rows = task[split].to_pandas()
        assert (rows["text"].str.split().str.len() >= WORD_ORDER_MIN_WORDS).all()
        assert 0.45 < rows["label"].mean() < 0.55  # balanced: chance is about one half
    rows = task["train"].to_pandas().head(500)
    assert rows[rows["label"] == 1]["text"].isin(originals).all()
    # A shuffled sentence has an original's words, in an order that is not the original's.
    by_words = {tuple(sorted(t.split())): t for t in sst2["train"]["text"]}
    for text in rows[rows["label"] == 0]["text"]:
        assert text != by_words[tuple(sorted(text.split()))]
    assert load_task("word-order", train_size=30, seed=3)["train"]["text"] == \
        load_task("word-order", train_size=30, seed=3)["train"]["text"]


def test_quotes_inside_sentences_are_kept_as_text():
    texts = load_task("sst2")["train"]["text"]
    assert any('"' in t for t in texts) or any("'" in t for t in texts)
    assert len(texts) == 67_349


def test_subsets_are_deterministic_and_seeded():
    a = load_task("sst2", train_size=50, dev_size=20, seed=1)
    b = load_task("sst2", train_size=50, dev_size=20, seed=1)
    c = load_task("sst2", train_size=50, seed=2)
    assert a["train"]["text"] == b["train"]["text"] and a["dev"]["text"] == b["dev"]["text"]
    assert a["train"]["text"] != c["train"]["text"]
    assert len(a["train"]) == 50 and len(c["dev"]) == 872


def test_train_size_larger_than_the_split_is_an_error():
    with pytest.raises(ValueError, match=r"train_size must be a whole number from 1 to 8551 .*got 9000"):
        load_task("cola", train_size=9000)


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown task 'imdb'; course tasks: sst2, subj, cola, stsb, word-order"):
        load_task("imdb")


def test_no_local_copy_and_no_hub_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_DIR_VARIABLE)
    # datasets reads these at import time, so set its flags too (CI exports them before anything starts).
    monkeypatch.setattr("datasets.config.HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(DataNotAvailableError, match=f"Offline: set {DATA_DIR_VARIABLE}") as caught:
        load_task("sst2")
    assert "datasets.load_dataset('glue', 'sst2')" in str(caught.value)


def test_a_data_folder_without_the_task_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(DataNotAvailableError, match="has no folder sst2/"):
        load_task("sst2")


def test_tokenization_is_cached(minilm):
    _, tokenizer = minilm
    data = load_task("sst2", train_size=40)
    first = tokenize(data["train"], tokenizer, 32)
    assert tokenize(data["train"], tokenizer, 32) is first
    assert max(len(ids) for ids in first["input_ids"]) <= 32 and "label" in first.column_names


# --- local files ----------------------------------------------------------------------

def write(tmp_path, text, name="reviews.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_local_csv_with_named_labels(tmp_path):
    rows = "\n".join(f"review {i},{'good' if i % 2 else 'bad'}" for i in range(40))
    data = load_task(path=write(tmp_path, "review,verdict\n" + rows), text_column="review", label_column="verdict")
    assert data["train"].features["label"].names == ["bad", "good"]
    assert len(data["train"]) + len(data["dev"]) == 40 and len(data["dev"]) == 4


def test_a_local_tsv_with_integer_labels(tmp_path):
    rows = "\n".join(f"{i % 3}\tsentence {i}" for i in range(30))
    data = load_task(path=write(tmp_path, "stars\ttext\n" + rows, "x.tsv"), text_column="text", label_column="stars")
    assert data["train"].features["label"].names == ["0", "1", "2"]


def test_separate_train_and_dev_files_share_one_set_of_classes(tmp_path):
    train = write(tmp_path, "text,label\n" + "\n".join(f"t{i},{'pos' if i % 2 else 'neg'}" for i in range(20)), "tr.csv")
    dev = write(tmp_path, "text,label\nd0,pos\nd1,pos\nd2,neg\n", "dv.csv")
    data = load_task(path={"train": train, "dev": dev}, text_column="text", label_column="label")
    assert (len(data["train"]), len(data["dev"])) == (20, 3)
    assert data["dev"].features["label"].names == ["neg", "pos"] and data["dev"]["label"] == [1, 1, 0]
    with pytest.raises(ValueError, match=r"separate files come as \{'train': path, 'dev': path\}; got the keys \['test', 'train'\]"):
        load_task(path={"train": train, "test": dev}, text_column="text", label_column="label")


def test_a_file_without_a_header_takes_columns_by_position(tmp_path):
    rows = "\n".join(f"{i % 2}\tsentence {i}" for i in range(30))
    data = load_task(path=write(tmp_path, rows, "plain.tsv"), text_column=1, label_column=0)
    assert len(data["train"]) + len(data["dev"]) == 30  # the first line is a row, not a header
    assert data["train"].features["label"].names == ["0", "1"]
    with pytest.raises(ValueError, match="has 2 column\\(s\\) \\(positions 0 to 1\\); no column at position 2"):
        load_task(path=write(tmp_path, rows, "plain.tsv"), text_column=2, label_column=0)
    with pytest.raises(ValueError, match="give both columns by name or both by position"):
        load_task(path=write(tmp_path, rows, "plain.tsv"), text_column=1, label_column="stars")


def test_rows_with_empty_text_are_dropped_and_counted(tmp_path):
    rows = "\n".join(f"{'' if i < 3 else f'review {i}'},{i % 2}" for i in range(30))
    with pytest.warns(UserWarning, match="dropped 3 of 30 rows with empty text"):
        data = load_task(path=write(tmp_path, "text,label\n" + rows), text_column="text", label_column="label")
    assert len(data["train"]) + len(data["dev"]) == 27


def test_local_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_task(path=tmp_path / "missing.csv", text_column="a", label_column="b")
    with pytest.raises(ValueError, match="is empty"):
        load_task(path=write(tmp_path, ""), text_column="a", label_column="b")
    with pytest.raises(ValueError, match="has a header but no rows"):
        load_task(path=write(tmp_path, "a,b\n"), text_column="a", label_column="b")
    with pytest.raises(ValueError, match="has no column 'label'; its columns are: text, stars"):
        load_task(path=write(tmp_path, "text,stars\nx,1\n"), text_column="text", label_column="label")
    with pytest.raises(ValueError, match="not classes .*non-whole numbers such as '0.5'"):
        load_task(path=write(tmp_path, "t,s\na,1\nb,0.5\n"), text_column="t", label_column="s")
    with pytest.raises(ValueError, match="single class"):
        load_task(path=write(tmp_path, "t,s\na,1\nb,1\n"), text_column="t", label_column="s")
    with pytest.raises(ValueError, match="needs text_column"):
        load_task(path=write(tmp_path, "t,s\na,1\n"))


def test_majority_share_is_the_accuracy_of_always_answering_the_commonest_class(offline_data):
    from freezelab.data import majority_share

    dev = load_task("sst2")["dev"]
    assert majority_share(dev) == pytest.approx(444 / 872)  # 444 positive sentences of 872


@pytest.mark.parametrize("task", ["sst2", "subj", "cola", "word-order"])
def test_one_dev_answer_is_worth_one_over_the_dev_split_that_loads(task, offline_data):
    """`data.DEV_SENTENCES` is what the spread rule's 'one dev answer' divides by."""
    from freezelab.data import DEV_SENTENCES

    assert len(load_task(task)["dev"]) == DEV_SENTENCES[task]
