"""The teacher edition runs, and tells the truth on a checkpoint it was not written for.

CI's first pass (nbval, `python -m pytest`) runs the student edition (`notebooks/`) on the course model. This
second pass runs the teacher edition (`teacher/notebooks/`, the sources, solutions included) of
every notebook top to bottom on `tiny-random-bert`: 4 blocks instead of MiniLM-L6's 6, 64 wide instead of 384, a
masked-LM head (so retention is probed the other way) and no pooler in its file, at the smoke size, with lean
memory (the way Binder runs, which nbval's pass does not take on a machine with 6 GB or more). Right after
each exercise, in the same kernel, its check must accept the notebook's own solution (its `answer_N`,
computed for that kernel's model and data), and the one in `teacher/solutions.py`, and reject each known
wrong answer (`exercise_answers.WRONG`). The notebooks run two at a time, in kernels of their own.
"""

import json
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import SHARED_DATA
from freezelab.data import DATA_DIR_VARIABLE

TESTS = Path(__file__).resolve().parent
TEACHER = TESTS.parent / "teacher"
NOTEBOOKS = TEACHER / "notebooks"  # the teacher edition
EVERY_NOTEBOOK = sorted(NOTEBOOKS.glob("*.ipynb"))  # from the folder: a notebook 08 is run as soon as it exists
CHECK = re.compile(r'fl\.exercises\.check\("(?P<key>[^"]+)", (?P<answer>answer_\w+)(?P<context>(?:, \w+=\w+)*)\)')
# What only holds for MiniLM-L6: its name, its number of blocks or width, its head size, its retention score.
COURSE_MODEL_CONSTANTS = re.compile(r"minilm|\bblock 5\b|layer\[\d+\]|\b384\b|\b770\b|0\.867", re.IGNORECASE)


def proof(key: str, answer: str, context: str) -> str:
    """A cell that holds one check to the solutions and to the known wrong answers, in the notebook's context."""
    return "\n".join([
        f"_context = dict({context.lstrip(', ')})",
        f"assert fl.exercises.check({key!r}, {answer}, **_context), 'rejected the notebook\\'s own solution'",
        f"assert fl.exercises.check({key!r}, SOLUTIONS[{key!r}](**_context), **_context), 'rejected its solution'",
        f"for _wrong in WRONG[{key!r}](**_context):",
        f"    assert not fl.exercises.check({key!r}, _wrong, **_context), f'accepted a wrong answer: {{_wrong!r}}'",
    ])


def checks_in(cells) -> list[tuple[str, str, str]]:
    return [(m["key"], m["answer"], m["context"]) for cell in cells if cell.cell_type == "code"
            for m in CHECK.finditer(cell.source)]


def run_with_proofs(path: str, cwd: str) -> str | None:
    """Run a teacher notebook, then its proof cells, in a fresh kernel working in `cwd`: None if every cell ran,
    else the error (the failing cell and its traceback)."""
    notebook = nbformat.read(path, as_version=4)
    answers = nbformat.v4.new_code_cell(
        f"import sys\nsys.path[:0] = [{str(TESTS)!r}, {str(TEACHER)!r}]\n"
        "from exercise_answers import WRONG\nfrom solutions import SOLUTIONS\n"
        "assert course.checkpoint == 'tiny-random-bert' and course.size.name == 'smoke' and course.memory == 'lean', course")
    cells, answered = [], False
    for cell in notebook.cells:  # each proof right after its exercise: the names it reads may be freed later
        cells.append(cell)
        if cell.cell_type == "code" and "fl.course.setup(" in cell.source and not answered:
            cells.append(answers)
            answered = True
        cells += [nbformat.v4.new_code_cell(proof(*check)) for check in checks_in([cell])]
    assert answered, f"{path}: no cell calls fl.course.setup()"
    notebook.cells = cells
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": cwd}}).execute()
    except Exception as error:  # nbclient's CellExecutionError: the cell and its traceback
        return f"{type(error).__name__}: {error}"
    return None


TEST_NAME = "test_teacher_edition_runs_and_its_checks_hold_on_another_checkpoint"


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
    """The selected teacher notebooks, run two at a time (each kernel on half the cores): stem -> error or None."""
    chosen = [item.callspec.params["path"] for item in request.session.items
              if getattr(item, "originalname", None) == TEST_NAME]
    data = os.environ.get(DATA_DIR_VARIABLE) or (str(SHARED_DATA) if SHARED_DATA.is_dir() else None)
    if data is None:
        pytest.skip(f"no offline data: set {DATA_DIR_VARIABLE}")
    with pytest.MonkeyPatch.context() as patch:  # what the kernels inherit
        patch.setenv("FREEZELAB_CHECKPOINT", "tiny-random-bert")
        patch.setenv("FREEZELAB_SIZE", "smoke")
        patch.setenv("FREEZELAB_LEAN", "1")  # Binder's way, which nbval's pass on a machine with room does not take
        patch.setenv(DATA_DIR_VARIABLE, data)
        patch.setenv("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // 2)))
        spawn = multiprocessing.get_context("spawn")  # not fork: this process holds torch's threads
        with ProcessPoolExecutor(2, mp_context=spawn) as pool:
            running = {path.stem: pool.submit(run_with_proofs, str(path), str(tmp_path_factory.mktemp(path.stem)))
                       for path in chosen}
            return {stem: future.result() for stem, future in running.items()}


@pytest.mark.parametrize("path", EVERY_NOTEBOOK, ids=lambda p: p.stem)
def test_teacher_edition_runs_and_its_checks_hold_on_another_checkpoint(path, outcomes):
    assert outcomes[path.stem] is None, outcomes[path.stem]


def test_every_notebook_with_exercises_is_proved():
    """The pattern above finds every check cell, so no exercise escapes the second pass; a notebook with
    exercises checks at least two of them."""
    for path in EVERY_NOTEBOOK:
        notebook = nbformat.read(path, as_version=4)
        calls = sum(cell.source.count("fl.exercises.check(") for cell in notebook.cells if cell.cell_type == "code")
        assert len(checks_in(notebook.cells)) == calls, path.name
        if any("**Exercise" in cell.source for cell in notebook.cells if cell.cell_type == "markdown"):
            assert calls >= 2, path.name


def test_no_course_model_constant_in_notebook_code():
    """Code that names MiniLM or its shape would be wrong for any other checkpoint; prose may name the course model."""
    for path in EVERY_NOTEBOOK:
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code":
                assert not COURSE_MODEL_CONSTANTS.search(source), f"{path.name}: {source[:200]}"
