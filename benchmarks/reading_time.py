"""Estimate: the time a student spends on each notebook, beside the machine's time (benchmarks/course.py).

Counts what a student reads and does in the student edition (`notebooks/`): words of prose (markdown cells),
lines of code to read, checked exercises (a check cell each) and open ones (marked "(open)"). The minutes
follow from stated rates, printed with the table, so a teacher can change them (--words-per-minute and so on):
they are an estimate from the notebook's contents, not a measurement of students.

    python benchmarks/reading_time.py [--words-per-minute 150] [--checked 4] [--open 10]
    python benchmarks/reading_time.py --write-guide   # refresh the table in docs/teachers_guide.md (default rates)
"""

import argparse
import json
import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
GUIDE = NOTEBOOKS.parent / "docs" / "teachers_guide.md"


def contents(path: Path) -> dict:
    cells = json.loads(path.read_text())["cells"]
    prose = " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    prose = re.sub(r"<!--.*?-->", " ", prose, flags=re.DOTALL)  # ledger and test markers: hidden, not read
    code = [c for c in cells if c["cell_type"] == "code"]
    return {"notebook": path.stem,
            "words": len(re.findall(r"[A-Za-z0-9][\w'-]*", re.sub(r"\(https?://[^)]*\)", "", prose))),
            "code lines": sum(len("".join(c["source"]).splitlines()) for c in code),
            "checked": sum("fl.exercises.check(" in "".join(c["source"]) for c in code),
            "open": sum(_open_exercises("".join(c["source"])) for c in cells if c["cell_type"] == "markdown")}


def _open_exercises(markdown: str) -> int:
    """Exercises marked "(open)", one by one or under an "Exercises (open)" heading."""
    under_open_heading = "Exercises (open)" in markdown
    return sum(under_open_heading or "(open)" in header for header in re.findall(r"\*\*Exercise \d+[^*]*\*\*", markdown))


def minutes(row: dict, words_per_minute=150, code_lines_per_minute=10, checked=4, open=10) -> float:
    return (row["words"] / words_per_minute + row["code lines"] / code_lines_per_minute
            + row["checked"] * checked + row["open"] * open)


def total_hours() -> float:
    """The whole course's estimate at the default rates, in hours to one decimal (the guide's "In all about")."""
    return round(sum(round(minutes(contents(path))) for path in NOTEBOOKS.glob("*.ipynb")) / 60, 1)


def write_guide() -> None:
    """Rewrite the words, exercises and minutes of the guide's lab-plan table (its rows start "| NN ") and the
    total under it."""
    text = GUIDE.read_text()
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        row = contents(path)
        text = re.sub(rf"^(\| {path.stem[:2]} [^|]+\| )[\d,]+ \| \d+ / \d+ \| \d+ \|",
                      rf"\g<1>{row['words']:,} | {row['checked']} / {row['open']} | {round(minutes(row))} |", text,
                      flags=re.MULTILINE)
    text = re.sub(r"In all about [\d.]+ hours of a student's time", f"In all about {total_hours()} hours of a student's "
                  "time", text)
    GUIDE.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words-per-minute", type=float, default=150, help="reading technical prose")
    parser.add_argument("--code-lines-per-minute", type=float, default=10, help="reading code to follow it")
    parser.add_argument("--checked", type=float, default=4, help="minutes per checked exercise")
    parser.add_argument("--open", type=float, default=10, help="minutes per open exercise")
    parser.add_argument("--write-guide", action="store_true", help="refresh docs/teachers_guide.md's table")
    args = parser.parse_args()
    if args.write_guide:
        write_guide()
    print(f"rates: {args.words_per_minute:g} words/min, {args.code_lines_per_minute:g} code lines/min, "
          f"{args.checked:g} min per checked exercise, {args.open:g} min per open one")
    print(f"{'notebook':36} {'words':>6} {'code':>5} {'checked':>7} {'open':>4} {'minutes':>7}")
    total = 0.0
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        row = contents(path)
        spent = minutes(row, args.words_per_minute, args.code_lines_per_minute, args.checked, args.open)
        total += spent
        print(f"{row['notebook']:36} {row['words']:>6} {row['code lines']:>5} {row['checked']:>7} {row['open']:>4} "
              f"{spent:>7.0f}")
    print(f"{'all':36} {'':>6} {'':>5} {'':>7} {'':>4} {total:>7.0f}")


if __name__ == "__main__":
    main()
