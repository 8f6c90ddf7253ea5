"""The claims ledger (`freezelab.claims`): every claim holds on the shipped results, every marked sentence reads as
the ledger says, and every comparative, causal or general sentence of the course is held: by a ledger id (a
result), a test (the kit's behaviour) or a source (a paper's finding), unless it is a question, a hypothesis or
an instruction.

The course's documents: the teacher edition's notebooks (the student edition is built from them), the
teachers' guide, the README and the other docs pages.
"""

import json
import sys
import re
from pathlib import Path

import pytest

from freezelab import claims, results

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted((ROOT / "teacher" / "notebooks").glob("*.ipynb")) + sorted((ROOT / "docs").glob("*.md")) + [
    ROOT / "README.md", ROOT / "docs" / "site" / "index.md", ROOT / "freezelab" / "precomputed" / "README.md"]

# What makes a sentence comparative, causal or general (the list, and its close kin).
CLAIM_WORDS = re.compile(r"\b(beats?|beaten|more than|less than|fewer|within|every|never|always|holds?|does not|"
                         r"do not|because|decides?|better|worse)\b", re.IGNORECASE)
# A question or a stated hypothesis claims nothing.
NOT_A_CLAIM = re.compile(r"\?\s*$|hypothes|do(es)? not test|cannot say|do(es)? not say|do(es)? not separate|"
                         r"^\s*(\*\*Exercise \d+\.\*\*\s*)?"  # an instruction, an exercise's included
                         r"(predict|ask|try|compare|check|read|take|find|write|add|run|pick|set|use|hand|edit)\b",
                         re.IGNORECASE)


# A sentence about the kit's behaviour (not about results) is held by a test instead: `<!-- test: FILE::NAME -->`.
TEST_MARKER = re.compile(r"<!--\s*test:\s*(tests/[\w/.-]+\.py)::(\w+)\s*-->")


def prose(path: Path) -> str:
    """A document's prose: markdown cells of a notebook, or a markdown file; code blocks left out."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = path.read_text()
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


def sentences(text: str) -> list[str]:
    """Sentences, each with the ledger marker that ends it (markers are glued to the sentence before them)."""
    text = re.sub(r"\s*(<!--\s*(claim|test|source):\s*[\w/.:-]+\s*-->)", r"\1", text)
    text = re.sub(r"<!--(?!\s*(claim|test|source):).*?-->", " ", text, flags=re.DOTALL)
    # A sentence never crosses a paragraph, a list item, a table row or a heading.
    units = re.split(r"\n\s*\n|\n(?=\s*(?:[-*] |\d+\. |\||#))", text)
    return [claims.normalized(s) for unit in units for s in re.split(r"(?<!et al\.)(?<=[.!?>])\s+(?=[A-Z*(\"'`|#-])", unit)
            if s.strip()]


def unlinked(path: Path) -> list[str]:
    return [s for s in sentences(prose(path)) if CLAIM_WORDS.search(s) and not claims.MARKER.search(s)
            and not TEST_MARKER.search(s) and not claims.SOURCE_MARKER.search(s) and not NOT_A_CLAIM.search(s)
            and not quotes_the_rule(s)]


def quotes_the_rule(sentence: str) -> bool:
    """A sentence of results.SPREAD_RULE quoted word for word: the rule itself, held by the test below."""
    return claims.normalized(sentence.replace(">", " ")) in claims.normalized(results.SPREAD_RULE)


@pytest.mark.parametrize("claim_id", sorted(claims.LEDGER))
def test_every_claim_holds_on_the_shipped_results(claim_id):
    claim = claims.LEDGER[claim_id]
    verdict = claims.check([claim_id])["holds"].tolist()[0]
    assert verdict is True, f"{claim_id} does not hold ({verdict}): {claim.text}"
    for name in claim.rests_on:
        results.shipped(name)  # the file it names ships


def test_every_marked_sentence_reads_as_the_ledger_says_and_every_claim_is_marked():
    marked = {}
    for path in DOCUMENTS:
        text = claims.normalized(re.sub(r"\s*(<!--\s*claim:)", r" \1", prose(path)))
        for claim_id in claims.MARKER.findall(text):
            assert claim_id in claims.LEDGER, f"{path.name} marks {claim_id!r}, which the ledger does not hold"
            claim = claims.LEDGER[claim_id]
            assert f"{claim.text} <!-- claim: {claim_id} -->" in text, (
                f"{path.name}: the sentence before {claim_id}'s marker is not the ledger's: {claim.text!r}")
            marked[claim_id] = path.name
    assert set(marked) == set(claims.LEDGER), f"claims no document states: {sorted(set(claims.LEDGER) - set(marked))}"


def test_every_test_marker_names_a_test_that_exists():
    """A sentence held by a test names it; the test must be there (renamed or deleted: the link breaks here)."""
    named = [(path.name, *m) for path in DOCUMENTS for m in TEST_MARKER.findall(prose(path))]
    assert named, "no document links a sentence to a test"
    for document, file, name in named:
        source = (ROOT / file).read_text() if (ROOT / file).exists() else ""
        assert re.search(rf"^def {name}\(", source, flags=re.MULTILINE), f"{document} names {file}::{name}: not found"


def test_every_source_marker_names_a_paper_the_ledger_describes():
    """A sentence about a published finding names its paper; claims.SOURCES says what that paper measured."""
    named = [(path.name, key) for path in DOCUMENTS for key in claims.SOURCE_MARKER.findall(prose(path))]
    assert named, "no document cites a source"
    for document, key in named:
        assert key in claims.SOURCES, f"{document} cites {key!r}; claims.SOURCES has {sorted(claims.SOURCES)}"


def test_no_comparative_sentence_in_the_course_is_without_a_ledger_id_a_test_or_a_source():
    """A comparative, causal or general sentence carries a ledger id (results), a test (the kit's behaviour) or a
    source (a paper's finding), or has the form of a question, a hypothesis or an instruction."""
    unheld = [(path.relative_to(ROOT).as_posix(), s) for path in DOCUMENTS for s in unlinked(path)]
    assert not unheld, "comparative sentences that nothing holds:\n" + "\n".join(f"{p}: {s}" for p, s in unheld)


def test_the_scanner_finds_a_comparative_sentence_and_accepts_a_marker_a_question_or_a_hypothesis():
    text = ("Top 2 beats the frozen encoder. Full fine-tuning beats it too. <!-- claim: x -->\n"
            "Does top 4 beat top 2? A hypothesis: it does not, because of dropout.\n\n"
            "**Exercise 3.** Take the runs within 0.02 of the best. Smith et al. (2020) found it always holds. "
            "<!-- source: smith2020 -->\n\n- A list item that holds no period\n- Every item is its own sentence")
    flagged = [s for s in sentences(text) if CLAIM_WORDS.search(s) and not claims.MARKER.search(s)
               and not claims.SOURCE_MARKER.search(s) and not NOT_A_CLAIM.search(s)]
    assert flagged == ["Top 2 beats the frozen encoder.", "- A list item that holds no period",
                       "- Every item is its own sentence"]


def test_a_claim_that_does_not_hold_is_reported_not_raised():
    claims.claim("test.false", "One is more than two.")(lambda: 1 > 2)
    claims.claim("test.broken", "It breaks.")(lambda: 1 / 0)
    try:
        table = claims.check(["test.false", "test.broken"]).set_index("id")
        assert table.loc["test.false", "holds"] == False  # noqa: E712 (a numpy bool in the frame)
        assert table.loc["test.broken", "holds"].startswith("ZeroDivisionError")
    finally:
        del claims.LEDGER["test.false"], claims.LEDGER["test.broken"]


def test_the_guides_student_time_table_is_what_the_estimate_computes():
    """docs/teachers_guide.md's lab-plan table is benchmarks/reading_time.py's output at its default rates."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import reading_time

    rows = re.findall(r"^\| (\d\d) [^|]+\| ([\d,]+) \| (\d+) / (\d+) \| (\d+) \|", (ROOT / "docs" / "teachers_guide.md")
                      .read_text(), flags=re.MULTILINE)
    assert len(rows) == len(list(reading_time.NOTEBOOKS.glob("*.ipynb")))
    for number, words, checked, open_, minutes in rows:
        path = next(reading_time.NOTEBOOKS.glob(f"{number}_*.ipynb"))
        row = reading_time.contents(path)
        assert (int(words.replace(",", "")), int(checked), int(open_), int(minutes)) == (
            row["words"], row["checked"], row["open"], round(reading_time.minutes(row))), (
            f"{path.name}: refresh the table with `python benchmarks/reading_time.py --write-guide`")
    assert f"In all about {reading_time.total_hours()} hours of a student's time" in (ROOT / "docs" /
                                                                                      "teachers_guide.md").read_text()


def test_the_guide_has_a_section_for_every_notebook_and_counts_them_right():
    guide = (ROOT / "docs" / "teachers_guide.md").read_text()
    numbers = sorted(p.name[:2] for p in (ROOT / "teacher" / "notebooks").glob("*.ipynb"))
    for number in numbers[1:]:  # 00 is the set-up check, covered under "Running the course"
        assert re.search(rf"^## {number} · ", guide, flags=re.MULTILINE), f"the guide has no section for {number}"
    assert f"notebooks ({numbers[0]} to {numbers[-1]})" in guide


def test_the_spread_rule_is_stated_once_in_the_words_the_code_applies():
    """The site's front page quotes results.SPREAD_RULE verbatim (the guide and notebooks point to it)."""
    page = claims.normalized((ROOT / "docs" / "site" / "index.md").read_text().replace("> ", " "))
    assert claims.normalized(results.SPREAD_RULE) in page
