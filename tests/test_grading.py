"""Grading with nbgrader: the teacher edition is an nbgrader source, every checked exercise is worth a point, and
`nbgrader autograde` gives a solved student copy full marks and a blank one none.

The proof runs nbgrader's own pipeline in a throwaway course folder: `generate_assignment` from the teacher
edition (hidden tests and solutions removed), a student's copy filled in with the teacher's solutions (or left
blank), then `autograde`, and reads the score from nbgrader's gradebook.
"""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import SHARED_DATA
from freezelab.data import DATA_DIR_VARIABLE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "teacher"))
import editions  # noqa: E402

SOURCES = editions.SOURCES
GRADED = "01_anatomy"  # the quickest notebook with checked exercises: nbgrader runs it twice


def checked_notebooks():
    return [p for p in sorted(SOURCES.glob("*.ipynb"))
            if any("fl.exercises.check(" in c.source for c in nbformat.read(p, as_version=4).cells)]


def test_every_check_is_a_graded_cell_worth_a_point_after_its_answer():
    """Each check cell is nbgrader's autograder test: locked, 1 point, its hidden test asserting the same check;
    the cell before it is the answer (a solution cell)."""
    with_exercises = [p for p in sorted(SOURCES.glob("*.ipynb"))
                      if any("**Exercise" in c.source for c in nbformat.read(p, as_version=4).cells)]
    assert checked_notebooks() == with_exercises and len(with_exercises) >= 7  # from the folder, not a typed count
    for path in checked_notebooks():
        cells = nbformat.read(path, as_version=4).cells
        for before, cell in zip(cells, cells[1:]):
            if "fl.exercises.check(" not in cell.source:
                continue
            grading = cell.metadata["nbgrader"]
            assert grading["grade"] and grading["points"] == 1 and grading["locked"] and not grading["solution"]
            visible, hidden = cell.source.split(editions.HIDDEN_BEGIN)
            assert hidden.strip().startswith(f"assert {visible.strip()}"), cell.source
            assert before.metadata["nbgrader"]["solution"] and editions.has_solution(before), before.source


def nbgrader(root: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"],
                          cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


def solved(release: nbformat.NotebookNode, source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released copy with every answer cell as the teacher wrote it (markers dropped, solutions kept)."""
    release = copy.deepcopy(release)
    teacher = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in release.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in teacher:
            cell.source = "\n".join(line for line in teacher[grade_id].source.splitlines()
                                    if line.strip() not in (editions.BEGIN, editions.END))
    return release


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder with the assignment generated from the teacher edition of GRADED."""
    pytest.importorskip("nbgrader")
    data = os.environ.get(DATA_DIR_VARIABLE) or (str(SHARED_DATA) if SHARED_DATA.is_dir() else None)
    if data is None:
        pytest.skip(f"no offline data: set {DATA_DIR_VARIABLE}")
    root = tmp_path_factory.mktemp("course")
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'freezelab'\n"
        "c.ClearSolutions.code_stub = {'python': ''}\n"  # as the student edition: the answer line stays, None
        "c.ExecutePreprocessor.timeout = 900\n")
    (root / "source" / "lab").mkdir(parents=True)
    source = editions.nbgrader_source(nbformat.read(SOURCES / f"{GRADED}.ipynb", as_version=4))
    nbformat.write(source, root / "source" / "lab" / f"{GRADED}.ipynb")
    nbgrader(root, "db", "student", "add", "solved")
    nbgrader(root, "db", "student", "add", "blank")
    nbgrader(root, "generate_assignment", "lab", "--force")
    release = nbformat.read(root / "release" / "lab" / f"{GRADED}.ipynb", as_version=4)
    for student, notebook in (("solved", solved(release, source)), ("blank", release)):
        folder = root / "submitted" / student / "lab"
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{GRADED}.ipynb")
    nbgrader(root, "autograde", "lab", "--force")
    return root


def score(root: Path, student: str) -> tuple[float, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission("lab", student)
        return submission.score, submission.max_score


def test_the_released_copy_has_no_solution_and_no_hidden_test(course):
    text = (course / "release" / "lab" / f"{GRADED}.ipynb").read_text()
    assert editions.HIDDEN_BEGIN not in text and editions.BEGIN not in text and "assert fl.exercises" not in text
    assert json.loads(text)["cells"], "an empty release"


def test_autograde_gives_a_solved_copy_every_point_and_a_blank_copy_none(course):
    points = sum(c.source.count("fl.exercises.check(") for c in nbformat.read(SOURCES / f"{GRADED}.ipynb",
                                                                              as_version=4).cells) // 2
    assert score(course, "solved") == (points, points) == (3, 3)
    assert score(course, "blank") == (0, points)
