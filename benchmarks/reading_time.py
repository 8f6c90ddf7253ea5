"""Estimate: the time a student spends on each notebook, beside the machine's time (benchmarks/course.py).

Counts what a student reads and does in the student edition (`notebooks/`): words of prose (markdown cells),
lines of code to read, checked exercises (a check cell each) and open ones (marked "(open)"). The minutes
follow from stated rates, printed with the table, so a teacher can change them (--words-per-minute and so on):
they are an estimate from the notebook's contents, not a measurement of students.

    python benchmarks/reading_time.py [--words-per-minute 150] [--checked 4] [--open 10]
"""

import argparse
import json
import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words-per-minute", type=float, default=150, help="reading technical prose")
    parser.add_argument("--code-lines-per-minute", type=float, default=10, help="reading code to follow it")
    parser.add_argument("--checked", type=float, default=4, help="minutes per checked exercise")
    parser.add_argument("--open", type=float, default=10, help="minutes per open exercise")
    args = parser.parse_args()
    print(f"rates: {args.words_per_minute:g} words/min, {args.code_lines_per_minute:g} code lines/min, "
          f"{args.checked:g} min per checked exercise, {args.open:g} min per open one")
    print(f"{'notebook':36} {'words':>6} {'code':>5} {'checked':>7} {'open':>4} {'minutes':>7}")
    total = 0.0
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        row = contents(path)
        minutes = (row["words"] / args.words_per_minute + row["code lines"] / args.code_lines_per_minute
                   + row["checked"] * args.checked + row["open"] * args.open)
        total += minutes
        print(f"{row['notebook']:36} {row['words']:>6} {row['code lines']:>5} {row['checked']:>7} {row['open']:>4} "
              f"{minutes:>7.0f}")
    print(f"{'all':36} {'':>6} {'':>5} {'':>7} {'':>4} {total:>7.0f}")


if __name__ == "__main__":
    main()
