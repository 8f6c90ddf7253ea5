"""Build the course's two editions from one set of sources, with nbgrader's solution markers.

For: instructors and CI. The sources are the teacher edition, `teacher/notebooks/`: every solution sits
between `### BEGIN SOLUTION` and `### END SOLUTION` lines, in cells marked as nbgrader solution cells (so
`nbgrader generate_assignment` reads the same files). Each checked exercise's check sits in a graded cell of
its own, worth 1 point, whose hidden test asserts the check: `nbgrader autograde` scores a student's copy
with it (`nbgrader_source` drops the teacher's own notes first; tests/test_grading.py proves the scores). The student edition, `notebooks/`, is what those
sources give with every marked region removed; a cell left empty (a teacher's note, the answer to an open
exercise) is dropped. The student edition is committed because Binder and Colab open it straight from the
repository; the test suite fails when it is not what the sources build.

Not for: grading. nbgrader does that, from the same sources.

    python teacher/editions.py              # rebuild notebooks/ from teacher/notebooks/
    python teacher/editions.py --check      # exit 1 if notebooks/ is out of date
    python teacher/editions.py --out DIR    # both editions into DIR/student and DIR/teacher, to hand out, and
                                            # DIR/nbgrader/source/freezelab: an nbgrader course's sources
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "teacher" / "notebooks"
STUDENT = ROOT / "notebooks"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"  # nbgrader's, in graded check cells


def strip_solutions(source: str, where: str, begin: str = BEGIN, end: str = END) -> str:
    """`source` without its solution regions (or, given their markers, its hidden tests), marker lines included;
    unbalanced markers are an error."""
    BEGIN, END = begin, end  # noqa: N806 (the messages below name whichever markers these are)
    kept, inside = [], False
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside a solution region")
            inside = True
        elif marker == END:
            if not inside:
                raise ValueError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            inside = False
        elif not inside:
            kept.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} never closed by {END}")
    return "\n".join(kept).strip("\n")


def has_solution(cell) -> bool:
    return any(line.strip() == BEGIN for line in cell.source.splitlines())


def has_hidden_tests(cell) -> bool:
    return any(line.strip() == HIDDEN_BEGIN for line in cell.source.splitlines())


def student_edition(notebook, name: str = "notebook"):
    """The notebook a student gets: solutions removed, emptied cells dropped, no outputs."""
    notebook = copy.deepcopy(notebook)
    cells = []
    for index, cell in enumerate(notebook.cells):
        marked = cell.metadata.get("nbgrader", {}).get("solution", False)
        if has_solution(cell) != marked:
            raise ValueError(f"{name}, cell {index} ({cell.get('id')}): solution markers and nbgrader's "
                             f"'solution' flag disagree; a cell with a solution region needs both")
        graded = cell.metadata.get("nbgrader", {}).get("grade", False)
        if has_hidden_tests(cell) and not (graded and cell.metadata["nbgrader"].get("points")):
            raise ValueError(f"{name}, cell {index} ({cell.get('id')}): hidden tests belong in a graded cell "
                             f"with points (nbgrader's 'grade' and 'points')")
        if has_hidden_tests(cell):
            cell.source = strip_solutions(cell.source, f"{name}, cell {index}", HIDDEN_BEGIN, HIDDEN_END)
        if has_solution(cell):
            cell.source = strip_solutions(cell.source, f"{name}, cell {index}")
            if not cell.source.strip():
                continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    notebook.cells = cells
    return notebook


def nbgrader_source(notebook):
    """The notebook as an nbgrader assignment's source: the teacher's own notes (cells that are all solution and
    carry no grade id of an exercise: ids ending in "-teacher") dropped, and each open exercise's written answer
    (a markdown solution cell) marked for manual grading, 1 point, as nbgrader requires of such cells."""
    notebook = copy.deepcopy(notebook)
    notebook.cells = [cell for cell in notebook.cells if not str(cell.get("id", "")).endswith("-teacher")]
    for cell in notebook.cells:
        grading = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and grading.get("solution"):
            grading.update(grade=True, points=1)
    return notebook


def build(sources: Path = SOURCES, student: Path = STUDENT) -> list[Path]:
    """Write the student edition of every source notebook into `student`; return the paths written."""
    written = []
    for path in sorted(sources.glob("*.ipynb")):
        notebook = student_edition(nbformat.read(path, as_version=4), path.name)
        target = student / path.name
        nbformat.write(notebook, target)
        written.append(target)
    return written


def out_of_date(sources: Path = SOURCES, student: Path = STUDENT) -> list[str]:
    """The student notebooks that differ from what the sources build (or are missing, or have no source)."""
    wrong = []
    for path in sorted(sources.glob("*.ipynb")):
        built = nbformat.writes(student_edition(nbformat.read(path, as_version=4), path.name))
        target = student / path.name
        if not target.exists() or target.read_text().rstrip("\n") != built.rstrip("\n"):
            wrong.append(path.name)
    wrong += [p.name for p in sorted(student.glob("*.ipynb")) if not (sources / p.name).exists()]
    return wrong


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if notebooks/ is not what the sources build")
    parser.add_argument("--out", type=Path, help="write both editions into OUT/student and OUT/teacher")
    args = parser.parse_args(argv)
    if args.check:
        wrong = out_of_date()
        if wrong:
            print(f"out of date: {', '.join(wrong)}; run `python teacher/editions.py`", file=sys.stderr)
            return 1
        print(f"notebooks/ is the student edition of teacher/notebooks/ ({len(list(SOURCES.glob('*.ipynb')))} notebooks)")
        return 0
    if args.out:
        (args.out / "student").mkdir(parents=True, exist_ok=True)
        shutil.copytree(SOURCES, args.out / "teacher", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints"))
        graded = args.out / "nbgrader" / "source" / "freezelab"
        graded.mkdir(parents=True, exist_ok=True)
        for path in sorted(SOURCES.glob("*.ipynb")):
            nbformat.write(nbgrader_source(nbformat.read(path, as_version=4)), graded / path.name)
        written = build(SOURCES, args.out / "student")
    else:
        written = build()
    print(f"student edition: {len(written)} notebooks in {written[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
