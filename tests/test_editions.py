"""The two editions: students get the teacher's notebooks minus every solution, built by one command.

How both editions *run* is proved elsewhere: nbval runs the student edition (`notebooks/`) on the course model,
`test_notebooks_any_checkpoint.py` runs the teacher edition on another checkpoint with its solutions checked.
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "teacher"))
import editions  # noqa: E402  (teacher/editions.py: a script, not part of the package)


def test_the_committed_student_edition_is_what_the_sources_build():
    assert editions.out_of_date() == [], "run `python teacher/editions.py` after editing teacher/notebooks/"


def test_the_student_edition_holds_no_solution():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text()
        assert editions.BEGIN not in text and editions.END not in text and "Teacher edition" not in text, path.name
        assert editions.HIDDEN_BEGIN not in text and "assert fl.exercises" not in text, path.name
        for cell in json.loads(text)["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [], f"{path.name}: outputs are committed"


def test_solutions_are_removed_with_their_markers_and_the_rest_kept():
    source = 'answer = None  # yours\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\ncheck("x", answer)'
    assert editions.strip_solutions(source, "cell") == 'answer = None  # yours\ncheck("x", answer)'


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "line 2: ### END SOLUTION without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "line 2: ### BEGIN SOLUTION inside"),
])
def test_unbalanced_markers_are_named_with_their_line(source, message):
    with pytest.raises(ValueError, match=message):
        editions.strip_solutions(source, "01_anatomy.ipynb, cell 3")


def test_a_cell_that_is_all_solution_is_dropped_and_markers_need_the_nbgrader_flag():
    solution = {"nbgrader": {"solution": True, "grade": False, "grade_id": "note", "locked": False,
                             "schema_version": 3, "task": False}}
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nAn answer for teachers.\n### END SOLUTION", metadata=solution),
        nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output("stream", text="1")], execution_count=1),
    ])
    student = editions.student_edition(notebook)
    assert [c.source for c in student.cells] == ["# Title", "x = 1"]
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    notebook.cells[1].metadata = {}
    with pytest.raises(ValueError, match="solution markers and nbgrader's 'solution' flag disagree"):
        editions.student_edition(notebook)


def test_one_command_builds_both_editions(tmp_path):
    assert editions.main(["--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in editions.SOURCES.glob("*.ipynb"))
    assert sorted(p.name for p in (tmp_path / "student").glob("*.ipynb")) == names
    assert sorted(p.name for p in (tmp_path / "teacher").glob("*.ipynb")) == names
    assert editions.BEGIN in (tmp_path / "teacher" / "04_forgetting_vs_underadaptation.ipynb").read_text()
    assert editions.BEGIN not in (tmp_path / "student" / "04_forgetting_vs_underadaptation.ipynb").read_text()


def test_every_notebook_opens_with_its_colab_badge_and_the_course_setup_cell():
    """The guide and runtimes page: a Colab badge that opens this very notebook; a first code cell that installs
    the kit and enables Colab's widget manager (on Colab only), then prints the course's settings."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        first_text = "".join(next(c for c in cells if c["cell_type"] == "markdown")["source"])
        first_code = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        assert f"colab.research.google.com/github/freezelab/freezelab/blob/main/notebooks/{path.name})" in first_text
        for line in ('if "google.colab" in sys.modules:', "%pip install", "output.enable_custom_widget_manager()",
                     "course = fl.course.setup()"):
            assert line in first_code, f"{path.name}: the first code cell lacks {line!r}"
